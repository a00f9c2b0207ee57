"""The original workflow's command, kept verbatim:

    python -m prometheus.scripts.backfill_numeric_embeddings --as-of 2025-01-31 \\
        --window-days 63 --market-id US_EQ --limit 500 --model-id num-stab-core-v1
"""

from prometheus.numeric.cli import run

if __name__ == "__main__":
    run()
