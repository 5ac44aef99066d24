"""`python -m bulkops` is the `bulkops` command."""

from bulkops.cli import main

main()
