"""What engine plugins share when each datasource lives in an external engine as an
object of its own (a MindsDB database, a Trino catalog): the engine's shape and the
query-engine hooks that hand every call to it (`weaver.external.engine`), and bringing
the engine in line with the registry after a start (`weaver.external.reconcile`). A
third-party plugin for another such engine writes its engine class and start-up, and
takes the rest from here."""
