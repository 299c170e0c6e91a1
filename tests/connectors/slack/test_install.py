"""Many workspaces install Baton through Bolt's OAuth flow; the token is kept encrypted."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from core.store import TokenRow
from tests.connectors.slack.conftest import desk_with

REDIRECT = "https://baton.example.com/slack/oauth_redirect"


def authorize_url(page: str) -> str:
    found = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page)
    assert found, page
    return html.unescape(found.group(1))


def test_oauth_install_stores_the_workspace_encrypted(tmp_path: Path, database_url: str | None) -> None:
    with desk_with(tmp_path, database_url, client_id="1111.2222", client_secret="fake-client-secret",
                   redirect_url=REDIRECT) as desk:
        r = desk.client.get("/slack/install")  # Bolt's install page: an "Add to Slack" button
        assert r.status_code == 200 and r.mimetype == "text/html"
        to = urlsplit(authorize_url(r.get_data(as_text=True)))
        query = parse_qs(to.query)
        assert (to.netloc, to.path) == ("slack.com", "/oauth/v2/authorize")
        assert query["client_id"] == ["1111.2222"] and query["redirect_uri"] == [REDIRECT]
        assert {"commands", "chat:write", "app_mentions:read"} <= set(query["scope"][0].split(","))
        state = query["state"][0]
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith(f"slack-app-oauth-state={state}") and "HttpOnly" in cookie

        code = desk.slack.authorize_code("T0NEW0001", REDIRECT)  # the user allowed it in Slack
        back = f"/slack/oauth_redirect?code={code}&state={state}"
        r = desk.client.get(back, headers={"Cookie": f"slack-app-oauth-state={state}"})
        assert r.status_code == 200, r.data
        bot = desk.connector.installations.find_bot(enterprise_id=None, team_id="T0NEW0001")
        assert bot is not None and bot.bot_user_id == "UBATON"
        token = desk.slack.workspaces["T0NEW0001"].token
        with desk.services.store.session() as s:
            stored = s.scalars(sa.select(TokenRow).where(TokenRow.account == "T0NEW0001")).one()
            assert token not in stored.access_token + stored.refresh_token
        # a reload of the page: the success page deleted the state cookie, so it is refused
        # before the used code reaches Slack (which would refuse it too)
        again = desk.client.get(back, headers={"Cookie": f"slack-app-oauth-state={state}"})
        assert again.status_code == 400 and len(desk.slack.called("oauth.v2.access")) == 1


def test_a_callback_from_another_browser_or_with_a_forged_state_is_refused(
        tmp_path: Path, database_url: str | None) -> None:
    with desk_with(tmp_path, database_url, client_id="1111.2222", client_secret="fake-client-secret",
                   redirect_url=REDIRECT) as desk:
        page = desk.client.get("/slack/install").get_data(as_text=True)
        state = parse_qs(urlsplit(authorize_url(page)).query)["state"][0]
        code = desk.slack.authorize_code("T0NEW0001", REDIRECT)
        other_browser = desk.client.application.test_client()  # without the state cookie
        assert other_browser.get(f"/slack/oauth_redirect?code={code}&state={state}").status_code == 400
        forged = state[:-4] + "0000"
        forger = desk.client.application.test_client()
        forger.set_cookie("slack-app-oauth-state", forged)
        r = forger.get(f"/slack/oauth_redirect?code={code}&state={forged}")
        assert r.status_code == 401, r.data
        assert desk.connector.installations.find_bot(enterprise_id=None, team_id="T0NEW0001") is None


def test_without_an_oauth_app_the_install_page_says_how_to_connect(desk: object) -> None:
    r = desk.client.get("/slack/install")  # type: ignore[attr-defined]
    assert r.status_code == 404 and "baton slack connect" in r.json["reason"]
