"""Keep the newest row per key in a numeric_window_embeddings table left with duplicates:

    python -m prometheus.scripts.dedupe_numeric_embeddings          # count them
    python -m prometheus.scripts.dedupe_numeric_embeddings --apply  # delete the older ones
"""

import sys

from prometheus.numeric.dedupe import main

if __name__ == "__main__":
    sys.exit(main())
