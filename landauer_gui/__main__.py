"""``python -m landauer_gui`` opens the studio (same as ``landauer-studio``)."""

from landauer_gui.app import main

raise SystemExit(main())
