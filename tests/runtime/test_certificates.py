"""The certificate loop: it outlives any failing pass."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from webhook.adapters.certs import CertificateReloader
from webhook.runtime.certificates import watch_certificates


class _Failing:
    """A reloader whose first two checks fail as no reloader should."""

    def __init__(self) -> None:
        self.checks = 0

    def check(self) -> bool:
        self.checks += 1
        if self.checks <= 2:
            raise OSError(24, "Too many open files")
        return True


def test_the_loop_goes_on_after_a_pass_fails() -> None:
    reloader = _Failing()
    checked: list[int] = []

    async def main() -> bool:
        task = asyncio.create_task(
            watch_certificates(
                cast(CertificateReloader, cast(Any, reloader)),
                every=0.01,
                checked=lambda: checked.append(reloader.checks),
            )
        )
        while reloader.checks < 5:
            await asyncio.sleep(0.01)
        alive = not task.done()
        task.cancel()
        return alive

    assert asyncio.run(main()) is True
    assert checked[0] == 3  # the passes that failed told the metrics nothing
