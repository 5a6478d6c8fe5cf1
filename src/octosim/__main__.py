from octosim.cli import main

raise SystemExit(main())
