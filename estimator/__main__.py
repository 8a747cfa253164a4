from estimator.cli.main import main

raise SystemExit(main())
