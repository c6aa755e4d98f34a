import sys

from cipherray.cli import main

sys.exit(main())
