import sys

from glaciermap.cli import main

sys.exit(main())
