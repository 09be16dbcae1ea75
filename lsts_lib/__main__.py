from lsts_lib.cli import main

raise SystemExit(main())
