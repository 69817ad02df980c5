import os
import signal

import pytest

from rl_post.stop_request import StopRequest


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_is_recorded_second_interrupts_and_handlers_come_back(signum):
    before = signal.getsignal(signum)
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signum)  # delivered before the next bytecode of this thread
        assert stop.requested and stop.describe() == signal.Signals(signum).name
        with pytest.raises(KeyboardInterrupt, match="second"):
            os.kill(os.getpid(), signum)
    assert signal.getsignal(signum) is before
