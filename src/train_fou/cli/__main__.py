"""`python -m train_fou.cli`: the train-fou command (the bench starts child nodes this way)."""
import sys

from train_fou.cli import main

sys.exit(main())
