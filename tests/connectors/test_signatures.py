"""Official signature vectors, and property-based tampering: any changed byte fails closed."""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.signatures import (
    SignatureError,
    hubspot_v1,
    hubspot_v2,
    hubspot_v3,
    hubspot_v3_uri,
    slack_v0,
    verify_hubspot,
    verify_slack,
)

HS_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URI = "https://www.example.com/webhook_uri"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
    b"IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)


def test_official_hubspot_vectors() -> None:
    v1_body = (b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
               b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
               b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]')
    assert hubspot_v1(HS_SECRET, v1_body) == (
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de")
    assert hubspot_v2(HS_SECRET, "GET", URI, b"") == (
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e")
    assert hubspot_v2(HS_SECRET, "POST", URI, b'{"example_field":"example_value"}') == (
        "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900")
    assert hubspot_v3(HS_SECRET, "POST", URI, b"{'example_field':'example_value'}",
                      "1693657560000") == "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="


def test_official_slack_vector() -> None:
    assert slack_v0(SLACK_SECRET, "1531420618", SLACK_BODY) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")
    verify_slack(secrets=[SLACK_SECRET], body=SLACK_BODY, now=1531420618 + 299, headers={
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"})


def test_v3_uri_decoding_rule() -> None:
    # The listed escapes are decoded (either case); %20 and the query's own "?" stay as they are.
    assert hubspot_v3_uri("https://x.io/a%3Ab%2Fc?q=%40me%2a%20x") == "https://x.io/a:b/c?q=@me*%20x"


def _v3_headers(body: bytes, ts: int, uri: str = URI, secret: str = HS_SECRET) -> dict[str, str]:
    return {"X-HubSpot-Signature-v3": hubspot_v3(secret, "POST", uri, body, str(ts)),
            "X-HubSpot-Request-Timestamp": str(ts)}


def test_v3_window_in_both_directions_and_key_rotation() -> None:
    now = 1_700_000_000.0
    body = b'[{"eventId": 1}]'
    for skew in (-299, 0, 299):
        ts = int((now + skew) * 1000)
        assert verify_hubspot(secrets=["old", HS_SECRET], method="POST", uri=URI, body=body,
                              headers=_v3_headers(body, ts), now=now) == "v3"
    for skew in (-301, 301):
        with pytest.raises(SignatureError, match="5-minute window"):
            verify_hubspot(secrets=[HS_SECRET], method="POST", uri=URI, body=body,
                           headers=_v3_headers(body, int((now + skew) * 1000)), now=now)


@pytest.mark.parametrize("headers", [
    {},
    {"X-HubSpot-Signature-v3": "abc"},
    {"X-HubSpot-Signature-v3": "abc", "X-HubSpot-Request-Timestamp": "soon"},
    {"X-HubSpot-Signature-v3": "abc", "X-HubSpot-Request-Timestamp": "²"},
    {"X-HubSpot-Signature": "zz", "X-HubSpot-Signature-Version": "v9"},
    {"X-HubSpot-Signature": "\u00e9\u00e9"},
])
def test_malformed_hubspot_headers_fail_closed(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        verify_hubspot(secrets=[HS_SECRET], method="POST", uri=URI, body=b"[]", headers=headers,
                       now=1_700_000_000)


def test_no_secret_configured_fails_closed() -> None:
    with pytest.raises(SignatureError, match="no HubSpot client secret"):
        verify_hubspot(secrets=[], method="POST", uri=URI, body=b"", headers={}, now=0)


def _flip(data: bytes, index: int) -> bytes:
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1, max_size=200), index=st.integers(min_value=0),
       part=st.sampled_from(["body", "uri", "timestamp", "signature"]))
def test_any_tampering_with_a_v3_request_is_rejected(body: bytes, index: int, part: str) -> None:
    now = 1_700_000_000.0
    ts = int(now * 1000)
    headers = _v3_headers(body, ts)
    uri, sent_body = URI + "?portalId=62515", body
    headers = _v3_headers(body, ts, uri)
    assert verify_hubspot(secrets=[HS_SECRET], method="POST", uri=uri, body=body,
                          headers=dict(headers), now=now) == "v3"  # untampered: it verifies
    if part == "body":
        sent_body = _flip(body, index)
    elif part == "uri":
        uri = uri[: index % len(uri)] + "X" + uri[index % len(uri) + 1:]
        if uri == URI + "?portalId=62515":
            uri += "&x"
    elif part == "timestamp":
        headers["X-HubSpot-Request-Timestamp"] = str(ts + 1 + index % 1000)
    else:
        raw = base64.b64decode(headers["X-HubSpot-Signature-v3"])
        headers["X-HubSpot-Signature-v3"] = base64.b64encode(_flip(raw, index)).decode()
    with pytest.raises(SignatureError):
        verify_hubspot(secrets=[HS_SECRET], method="POST", uri=uri, body=sent_body,
                       headers=headers, now=now)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1, max_size=200), index=st.integers(min_value=0),
       part=st.sampled_from(["body", "signature", "timestamp"]), version=st.sampled_from(["v1", "v2"]))
def test_any_tampering_with_v1_v2_is_rejected(body: bytes, index: int, part: str,
                                               version: str) -> None:
    sig = hubspot_v1(HS_SECRET, body) if version == "v1" else hubspot_v2(HS_SECRET, "POST", URI, body)
    headers = {"X-HubSpot-Signature": sig, "X-HubSpot-Signature-Version": version}
    assert verify_hubspot(secrets=[HS_SECRET], method="POST", uri=URI, body=body,
                          headers=headers, now=0) == version
    if part == "body":
        body = _flip(body, index)
    else:
        i = index % len(sig)
        headers["X-HubSpot-Signature"] = sig[:i] + ("0" if sig[i] != "0" else "1") + sig[i + 1:]
    with pytest.raises(SignatureError):
        verify_hubspot(secrets=[HS_SECRET], method="POST", uri=URI, body=body, headers=headers,
                       now=0)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1, max_size=200), index=st.integers(min_value=0),
       part=st.sampled_from(["body", "timestamp", "signature"]))
def test_any_tampering_with_a_slack_request_is_rejected(body: bytes, index: int, part: str) -> None:
    ts = 1_700_000_000
    headers = {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": slack_v0("s3", str(ts), body)}
    verify_slack(secrets=["s3"], body=body, headers=headers, now=ts)
    if part == "body":
        body = _flip(body, index)
    elif part == "timestamp":
        headers["X-Slack-Request-Timestamp"] = str(ts - 1 - index % 200)
    else:
        sig = headers["X-Slack-Signature"]
        i = 3 + index % (len(sig) - 3)
        headers["X-Slack-Signature"] = sig[:i] + ("0" if sig[i] != "0" else "1") + sig[i + 1:]
    with pytest.raises(SignatureError):
        verify_slack(secrets=["s3"], body=body, headers=headers, now=ts)


# -- found by mutation testing: boundaries and the reasons a caller reads ----------------------


def test_the_window_is_inclusive_and_a_16_digit_timestamp_is_a_time_not_garbage() -> None:
    body, now = b"{}", 1_700_000_000.0
    at_edge = int((now - 300) * 1000)
    assert verify_hubspot(secrets=[HS_SECRET], method="POST", uri=URI, body=body,
                          headers=_v3_headers(body, at_edge), now=now) == "v3"
    far = 9_999_999_999_999_999  # 16 digits: a time (in the year 2286), outside the window
    with pytest.raises(SignatureError, match="^timestamp outside the 5-minute window$"):
        verify_hubspot(secrets=[HS_SECRET], method="POST", uri=URI, body=body,
                       headers=_v3_headers(body, far), now=now)
    with pytest.raises(SignatureError, match="malformed"):
        verify_hubspot(secrets=[HS_SECRET], method="POST", uri=URI, body=body,
                       headers=_v3_headers(body, far * 10), now=now)


def test_each_failure_says_what_is_wrong() -> None:
    with pytest.raises(SignatureError, match="^no HubSpot client secret is configured$"):
        verify_hubspot(secrets=[], method="POST", uri=URI, body=b"", headers={}, now=0)
    ts = "1531420618"
    for headers in ({"X-Slack-Request-Timestamp": ts}, {"X-Slack-Signature": "v0=x"}):
        with pytest.raises(SignatureError,
                           match="^missing X-Slack-Signature or X-Slack-Request-Timestamp$"):
            verify_slack(secrets=[SLACK_SECRET], body=SLACK_BODY, headers=headers,
                         now=1531420618.0)
    with pytest.raises(SignatureError, match="Slack signature does not match"):
        verify_slack(secrets=[SLACK_SECRET], body=SLACK_BODY + b"x", now=1531420618.0,
                     headers={"X-Slack-Request-Timestamp": ts,
                              "X-Slack-Signature": slack_v0(SLACK_SECRET, ts, SLACK_BODY)})


def test_each_hubspot_and_slack_refusal_names_its_header() -> None:
    body, now = b"{}", 1_700_000_000.0
    ts = int(now * 1000)
    headers = _v3_headers(body, ts)
    with pytest.raises(SignatureError, match="^HubSpot v3 signature does not match$"):
        verify_hubspot(secrets=[HS_SECRET], method="POST", uri=URI, body=body + b" ",
                       headers=headers, now=now)
    with pytest.raises(SignatureError, match="^missing or malformed X-HubSpot-Request-Timestamp$"):
        verify_hubspot(secrets=[HS_SECRET], method="POST", uri=URI, body=body,
                       headers={"X-HubSpot-Signature-v3": headers["X-HubSpot-Signature-v3"]}, now=now)
    with pytest.raises(SignatureError, match="^malformed X-Slack-Request-Timestamp$"):
        verify_slack(secrets=[SLACK_SECRET], body=SLACK_BODY, now=1531420618.0,
                     headers={"X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": "v0=x"})
    with pytest.raises(SignatureError, match="^Slack signature does not match$"):
        verify_slack(secrets=[SLACK_SECRET], body=SLACK_BODY, now=1531420618.0,
                     headers={"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": "v0=x"})
