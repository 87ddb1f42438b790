"""The per-provider request budget at the HTTP client: every request draws a token, except
the one request whose token the CI runner already took when it claimed the run."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from puerta.ci.registry import BudgetedTransport, BudgetExhausted, prepaid_token


class Budget:
    """Counts the tokens asked for; grants ``left`` of them."""

    def __init__(self, left: int) -> None:
        self.left = left
        self.asked = 0

    async def take(self) -> float:
        self.asked += 1
        if self.left > 0:
            self.left -= 1
            return 0.0
        return 6.0


def client(budget: Budget, provider: str = "gh") -> tuple[httpx.AsyncClient, list[str]]:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={})

    transport = BudgetedTransport(httpx.MockTransport(answer), budget.take, provider)
    return httpx.AsyncClient(transport=transport, base_url="http://ci.test"), seen


async def test_each_request_takes_a_token_and_none_is_sent_without_one() -> None:
    budget = Budget(left=2)
    http, seen = client(budget)
    async with http:
        await http.get("/one")
        await http.get("/two")
        with pytest.raises(BudgetExhausted) as refused:
            await http.get("/three")
    assert seen == ["/one", "/two"]
    assert budget.asked == 3
    assert refused.value.retry_after == 6.0


async def test_a_prepaid_token_covers_only_the_next_request_to_its_provider() -> None:
    budget = Budget(left=10)
    http, seen = client(budget)
    async with http:
        with prepaid_token("gh"):
            await http.get("/pipeline")  # paid for by the claim
            await http.get("/workflows")  # a second request of the same poll pays its own
        await http.get("/later")
    assert seen == ["/pipeline", "/workflows", "/later"]
    assert budget.asked == 2


async def test_a_token_prepaid_for_another_provider_is_not_used() -> None:
    budget = Budget(left=10)
    http, _ = client(budget, provider="circleci")
    async with http:
        with prepaid_token("gh"):
            await http.get("/pipeline")
    assert budget.asked == 1


async def test_a_prepaid_token_belongs_to_the_task_that_claimed() -> None:
    """Runs worked on at once each spend only their own prepaid token."""
    budget = Budget(left=10)
    http, seen = client(budget)

    async def prepaid_run(name: str) -> None:
        with prepaid_token("gh"):
            await http.get(f"/{name}")
            await asyncio.sleep(0)
            await http.get(f"/{name}/jobs")

    async with http:
        await asyncio.gather(prepaid_run("a"), prepaid_run("b"), http.get("/unpaid"))
    assert sorted(seen) == ["/a", "/a/jobs", "/b", "/b/jobs", "/unpaid"]
    assert budget.asked == 3  # the two second requests and the unpaid one
