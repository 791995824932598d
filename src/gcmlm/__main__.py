from gcmlm.cli import main

raise SystemExit(main())
