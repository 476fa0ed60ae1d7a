"""The embedded defaults: plugins that need no server, registered `trylast`."""
