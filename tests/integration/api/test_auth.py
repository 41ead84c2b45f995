"""Authentication on the real server: keys from the CLI, every bad key a 401 in the documented shape."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from api.auth import KeyStore, generate_key
from tests.integration.api.conftest import Tenant
from tests.integration.conftest import CliRunner


def status_of(url: str, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return httpx.get(f"{url}/v1/search", params={"q": "light"}, headers=headers, timeout=30)


def test_keys_create_list_revoke_through_the_cli(
    api_url: str, run_cli: CliRunner, tenant_factory: Callable[[str], Tenant]
) -> None:
    tenant = tenant_factory("cli").name
    created = run_cli("keys", "create", "--tenant", tenant, "--json")
    assert created.returncode == 0, created.stderr
    document = json.loads(created.stdout)
    assert document["tenant"] == tenant and document["key"].startswith("tw_")
    assert status_of(api_url, f"Bearer {document['key']}").status_code == 200

    listed = json.loads(run_cli("keys", "list", "--tenant", tenant, "--json").stdout)["keys"]
    assert document["key_id"] in [key["key_id"] for key in listed if not key["revoked"]]
    assert {key["tenant_id"] for key in listed} == {tenant}
    # tw_<key id>_<secret>; the url-safe secret may itself contain "_".
    secret = document["key"].removeprefix("tw_").split("_", 1)[1]
    assert secret not in json.dumps(listed, default=str)  # never the secret

    revoked = run_cli("keys", "revoke", document["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert status_of(api_url, f"Bearer {document['key']}").status_code == 401
    assert run_cli("keys", "revoke", "000000000000").returncode != 0
    bad_tenant = run_cli("keys", "create", "--tenant", "no spaces; allowed")
    assert bad_tenant.returncode != 0 and "Traceback" not in bad_tenant.stderr


def test_keys_do_not_survive_as_plaintext(
    key_store: KeyStore, api_settings: object, tenant_factory: Callable[[str], Tenant]
) -> None:
    tenant = tenant_factory("plain")
    rows = key_store.list(tenant.name)
    assert rows and all("key_hash" not in row for row in rows)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer not-a-key",
        "Token abc",
        "Bearer " + generate_key()[1],  # well formed, never issued
        "Bearer tw_" + "a" * 1_000_000,  # 1 MB
    ],
)
def test_bad_keys_get_401(api_url: str, authorization: str | None) -> None:
    response = status_of(api_url, authorization)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_right_key_id_with_a_wrong_secret_gets_401(
    api_url: str, tenant_factory: Callable[[str], Tenant]
) -> None:
    tenant = tenant_factory("forged")
    forged = tenant.key[:-4] + ("AAAA" if not tenant.key.endswith("AAAA") else "BBBB")
    assert status_of(api_url, f"Bearer {forged}").status_code == 401
    assert status_of(api_url, f"Bearer {tenant.key}").status_code == 200


def test_rate_limit_on_the_real_server(
    api_factory: Callable[..., object], tenant_factory: Callable[[str], Tenant]
) -> None:
    tenant = tenant_factory("limited")
    with api_factory(rate_limit_per_s=0.5, rate_limit_burst=2) as url:  # type: ignore[attr-defined]
        statuses = [status_of(url, f"Bearer {tenant.key}") for _ in range(3)]
    assert [response.status_code for response in statuses] == [200, 200, 429]
    assert statuses[2].headers["retry-after"] == "2" and statuses[2].json()["error"]["code"] == "rate_limited"
