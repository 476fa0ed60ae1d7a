"""The web console served at `/`: static files packaged with the wheel, and the routes
that serve them. It calls only the public API, like any other client."""
