#!/usr/bin/env python
"""What the world's first-step memorization detection measures (benchmark.world.detection_diagnosis).

    python scripts/diagnose_world_detection.py [--model builtin:tiny] [--draws 4]
"""

from benchmark.world.detection_diagnosis import main

if __name__ == "__main__":
    main()
