from weaver.cli import main

raise SystemExit(main())
