"""What the gateway does, across hooks: the operations behind every entry point.

HTTP handlers (``weaver.api``), the CLI, the demo and the conformance kits all call these
functions, so a datasource registered from the command line goes through exactly the
checks a request does. Nothing here knows about HTTP; everything takes the `Host` and
the caller's tenant or principal explicitly.
"""
