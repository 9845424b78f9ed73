"""`python -m rfsense ...` is `rfsense ...` (torchrun launches training this way)."""

from rfsense.cli import main

main()
