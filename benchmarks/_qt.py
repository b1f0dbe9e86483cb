"""Qt helpers shared by the GUI benchmarks."""

from __future__ import annotations

import time


def wait_until(app, pred, timeout: float) -> bool:
    """Run the Qt event loop (as napari does: sleeping until an event) until ``pred()``
    or ``timeout`` seconds; returns ``pred()``."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    t0 = time.perf_counter()

    def check() -> None:
        if pred() or time.perf_counter() - t0 > timeout:
            loop.quit()

    poll = QTimer()
    poll.setInterval(50)
    poll.timeout.connect(check)
    poll.start()
    check()
    if not (pred() or time.perf_counter() - t0 > timeout):
        loop.exec()
    poll.stop()
    return pred()
