"""`python -m payments.fake_stripe`: the fake Stripe for the demo (bin/run with DEMO_STRIPE=1)."""

import argparse
import logging
import os
import time

from payments.fake_stripe import FakeState, start_in_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    # From the environment by default, so the keys stay off the command line (ps).
    parser.add_argument(
        "--secret-key",
        default=os.environ.get("STRIPE_SECRET_KEY", ""),
        help="the key it accepts (default: $STRIPE_SECRET_KEY)",
    )
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        help="signs the webhook events (default: $STRIPE_WEBHOOK_SECRET)",
    )
    parser.add_argument("--webhook-url", default="", help="where the events are POSTed")
    args = parser.parse_args()
    if not (args.secret_key and args.webhook_secret):
        parser.error(
            "set --secret-key and --webhook-secret (or STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET)"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    state = FakeState(
        secret_key=args.secret_key, webhook_secret=args.webhook_secret, webhook_url=args.webhook_url
    )
    running = start_in_thread(state, host=args.host, port=args.port)
    logging.getLogger("payments.fake_stripe").info(
        "fake Stripe at %s, events to %s", running.url, args.webhook_url or "(nowhere)"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        running.stop()


if __name__ == "__main__":
    main()
