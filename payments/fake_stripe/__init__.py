"""A local fake of the parts of Stripe the bridge uses, served over real HTTP (tests, the
demo): `python -m payments.fake_stripe --help`."""

from payments.fake_stripe.server import RunningFake, deliver, start_in_thread
from payments.fake_stripe.state import FakeState, sign

__all__ = ["FakeState", "RunningFake", "deliver", "sign", "start_in_thread"]
