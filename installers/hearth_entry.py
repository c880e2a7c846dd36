"""The frozen app's entry point (PyInstaller runs this as __main__): exactly `hearth`."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
