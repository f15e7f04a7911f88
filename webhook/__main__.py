"""`python -m webhook`: the same command line as `multinode-webhook`."""

from webhook.cli import main

raise SystemExit(main())
