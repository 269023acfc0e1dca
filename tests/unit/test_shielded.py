"""``shielded`` cancelled at every moment of a unit that makes something and returns it: the
caller gets the thing, or it is handed to ``discard``; never neither, never both. (A
listener cancelled just after its connection was made left it open; ``test_notifications``
cancels listeners at random moments.)"""

import asyncio

from collect_api.db import shielded


class Made:
    def __init__(self) -> None:
        self.given_back = False


async def test_a_result_the_cancelled_caller_never_gets_is_discarded() -> None:
    for steps in range(8):  # cancelled after 0, 1, ... turns of the loop
        made: list[Made] = []

        async def unit(made: list[Made] = made) -> Made:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            made.append(Made())
            return made[-1]

        def discard(thing: Made) -> None:
            assert not thing.given_back
            thing.given_back = True

        task = asyncio.create_task(shielded(unit, discard=discard))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        try:
            got = await task
        except asyncio.CancelledError:
            got = None
        if not made:  # cancelled before it started: the unit never ran
            assert got is None and steps == 0
            continue
        assert len(made) == 1
        if got is not None:
            assert got is made[0] and not got.given_back, f"after {steps} steps"
        else:
            assert made[0].given_back, f"made and lost after {steps} steps"
