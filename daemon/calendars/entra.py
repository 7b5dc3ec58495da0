"""Microsoft Entra ID for Graph: the app's credential (a client secret, or a certificate),
its msal application and token, the bearer auth every Graph request carries, Graph's
error shape, and the members of an Entra group (a roster's source)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from urllib.parse import quote, urlencode, urlsplit

import httpx
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..config import MicrosoftConfig
from ..environment import private_key
from ..errors import CalendarError, CredentialsRefused
from ..http import NETWORK, ForeignHost, Outbound, Pages, network_cause, origin, retry_after, send


def client_credential(config: MicrosoftConfig) -> str | dict[str, str]:
    """The client secret, or a certificate credential from a PEM (key + certificate)."""
    if config.client_certificate_file is not None:
        pem = config.client_certificate_file.read_bytes()
        try:
            certificate = x509.load_pem_x509_certificate(pem)
            key = private_key(pem)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CalendarError(f"{config.client_certificate_file}: needs an RSA private key "
                                "and its certificate, both PEM") from None
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return {"private_key": key_pem,
                "thumbprint": certificate.fingerprint(hashes.SHA1()).hex(),  # noqa: S303
                "public_certificate": certificate.public_bytes(
                    serialization.Encoding.PEM).decode()}
    assert config.client_secret_file is not None
    return config.client_secret_file.read_text().strip()


class GraphApp:
    """The msal application shared by every mailbox: one token for the whole tenant."""

    def __init__(self, config: MicrosoftConfig, outbound: Outbound) -> None:
        self._config = config
        self._credential = client_credential(config)
        # trust, proxy and retries for msal's requests, which go to the authority only
        self._session = outbound.requests("microsoft", config.authority_host)
        self.max_pages = outbound.max_pages
        self._timeout = outbound.timeout
        self._app: msal.ConfidentialClientApplication | None = None  # built on first use:
        graph = urlsplit(config.graph_base_url)  # msal reads the authority's metadata then
        self._scopes = [f"{graph.scheme}://{graph.netloc}/.default"]
        self._lock = threading.Lock()

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            config = self._config
            self._app = msal.ConfidentialClientApplication(
                config.client_id, client_credential=self._credential,
                authority=f"{config.authority_host}/{config.tenant_id}",
                http_client=self._session, timeout=self._timeout,
                # msal checks a non-Microsoft authority against Microsoft's list otherwise
                instance_discovery=False if _custom(config) else None)
        return self._app

    def token(self, fresh: bool = False) -> str:
        with self._lock:
            try:
                app = self._application()
                if fresh:
                    app.remove_tokens_for_client()
                result = app.acquire_token_for_client(scopes=self._scopes)
            except (requests.RequestException, ValueError) as err:
                raise CalendarError(f"Microsoft identity platform unreachable at "
                                    f"{origin(self._config.authority_host)}: "
                                    f"{network_cause(err)}", code=NETWORK) from None
            except ForeignHost as err:
                raise CalendarError(f"Microsoft identity platform: {err}") from None
        if "access_token" not in result:
            reason = str(result.get("error_description") or result.get("error"))
            raise CredentialsRefused("Microsoft refused the app credentials: "
                                     f"{reason[:160]}", code=result.get("error"))
        return str(result["access_token"])


def _custom(config: MicrosoftConfig) -> bool:
    return urlsplit(config.authority_host).hostname not in ("login.microsoftonline.com",)


class GraphAuth(httpx.Auth):
    """Bearer token from msal; on 401 InvalidAuthenticationToken, one fresh token."""

    def __init__(self, app: GraphApp) -> None:
        self._app = app

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._app.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._app.token(fresh=True)}"
            yield request


def graph_error(what: str, response: httpx.Response) -> CalendarError:
    """An error answer in Graph's shape ({"error": {"code", "message"}}) as a
    CalendarError with its fields."""
    code = None
    try:
        error = response.json()["error"]
        code = error.get("code")
        detail = f"{code}: {str(error.get('message'))[:160]}"
    except (ValueError, KeyError, TypeError):
        detail = response.text[:160]
    return CalendarError(f"{what}: HTTP {response.status_code} ({detail})",
                         status=response.status_code, code=code,
                         retry_after=retry_after(response.headers))


def group_users(app: GraphApp, http: httpx.Client, graph_base_url: str, group_id: str,
                sleep: Callable[[float], None] = time.sleep) -> list[dict[str, str]]:
    """Every user in an Entra group, nested groups included, 999 a page (the roster's
    source; application permission GroupMember.Read.All)."""
    url: str | None = (f"{graph_base_url}/groups/{quote(group_id, safe='')}/transitiveMembers/"
                       "microsoft.graph.user?" + urlencode(
                           {"$select": "displayName,mail,userPrincipalName", "$top": 999},
                           safe="$,"))
    users: list[dict[str, str]] = []
    pages = Pages(f"Graph group {group_id}", app.max_pages)
    while url:
        request = http.build_request("GET", url)
        try:
            response = send(http, request, GraphAuth(app), sleep)
        except httpx.TransportError as err:
            raise CalendarError(f"Microsoft Graph unreachable at {origin(graph_base_url)}: "
                                f"{network_cause(err)}", code=NETWORK) from None
        except ForeignHost as err:
            raise CalendarError(f"Graph group {group_id}: {err}") from None
        if response.status_code >= 400:
            raise graph_error(f"Graph group {group_id}", response)
        body = response.json()
        users += body.get("value", [])
        url = pages.next(body.get("@odata.nextLink"))
    return users
