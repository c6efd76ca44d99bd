"""Storage retries: which failures are retried, within which budget, and when a write's outcome is uncertain."""

import asyncio
import time

import aiohttp
import pytest
from azure.core.exceptions import (
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from scim.store import retries
from scim.store.contract import StoreUnavailable


def status_error(status: int, kind: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    error = kind(message=f"status {status}")
    error.status_code = status
    return error


@pytest.mark.parametrize(
    "error",
    [
        ServiceRequestError("connection refused"),
        ServiceResponseError("connection reset while reading"),
        IncompleteReadError("response cut"),
        DecodeError("half a JSON body"),
        TimeoutError(),
        ConnectionResetError(),
        aiohttp.ServerDisconnectedError(),
        *(status_error(status) for status in (408, 429, 500, 502, 503, 504)),
    ],
    ids=lambda error: type(error).__name__ + str(getattr(error, "status_code", "") or ""),
)
def test_transient_failures_are_retried(error: BaseException):
    assert retries.is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        status_error(404, ResourceNotFoundError),
        status_error(409, ResourceExistsError),
        status_error(412, ResourceModifiedError),
        status_error(400),
        status_error(403),
        status_error(413),
        ValueError("a bug, not an outage"),
    ],
    ids=lambda error: type(error).__name__ + str(getattr(error, "status_code", "") or ""),
)
def test_answers_and_bugs_are_not_retried(error: BaseException):
    assert not retries.is_transient(error)


class Flaky:
    """Fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "answer"


async def test_a_transient_failure_that_clears_within_the_budget_succeeds():
    call = Flaky(3, ServiceRequestError("refused"))
    attempts = retries.Attempts(budget=5)
    assert await attempts.run(call) == "answer"
    assert call.calls == 4
    assert attempts.uncertain


async def test_a_clean_success_is_certain():
    attempts = retries.Attempts(budget=5)
    assert await attempts.run(Flaky(0, ServiceRequestError("unused"))) == "answer"
    assert not attempts.uncertain


async def test_a_lasting_outage_becomes_store_unavailable_within_the_budget():
    call = Flaky(10**6, status_error(503))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await retries.Attempts(budget=0.5).run(call)
    assert call.calls > 1
    assert time.monotonic() - started < 0.5 + retries.MAX_BACKOFF_SECONDS


async def test_a_hung_call_is_cut_off_at_the_budget():
    async def hang() -> str:
        await asyncio.sleep(3600)
        return "never"

    with pytest.raises(StoreUnavailable):
        await retries.Attempts(budget=0.3).run(hang)


async def test_a_definite_answer_is_raised_at_once():
    call = Flaky(1, status_error(404, ResourceNotFoundError))
    with pytest.raises(ResourceNotFoundError):
        await retries.Attempts(budget=5).run(call)
    assert call.calls == 1


async def test_the_request_budget_is_shared_by_every_call_of_the_request():
    with retries.request_budget(0.3):
        await asyncio.sleep(0.35)
        call = Flaky(1, ServiceRequestError("refused"))
        with pytest.raises(StoreUnavailable):  # past the request's budget: one attempt, no retry
            await retries.Attempts(budget=60).run(call)
    assert call.calls == 1


async def test_past_the_budget_a_healthy_call_still_gets_its_attempt():
    """A large but healthy request (a 1,000-member PATCH) may outlast the budget; only retries stop."""
    with retries.request_budget(0.01):
        await asyncio.sleep(0.05)
        assert await retries.Attempts(budget=60).run(Flaky(0, ServiceRequestError("unused"))) == "answer"
