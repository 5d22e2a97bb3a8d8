from sladaemon.cli import main

raise SystemExit(main())
