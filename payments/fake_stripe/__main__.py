"""`python -m payments.fake_stripe`: the fake Stripe for the demo (bin/run with DEMO_STRIPE=1)."""

import argparse
import logging
import time

from payments.fake_stripe import FakeState, start_in_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--secret-key", required=True, help="the STRIPE_SECRET_KEY it accepts")
    parser.add_argument("--webhook-secret", required=True, help="signs the webhook events")
    parser.add_argument("--webhook-url", default="", help="where the events are POSTed")
    args = parser.parse_args()
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
