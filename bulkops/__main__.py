"""`python -m bulkops` is the `bulkops` command."""

from bulkops.console import main

main()
