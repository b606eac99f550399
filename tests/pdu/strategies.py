"""Hypothesis strategies shared by the PDU tests."""

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from simhive.agent.modem.gsm7 import DEFAULT_TABLE, EXTENSION_TABLE

GSM_CHARS = "".join(ch for ch in DEFAULT_TABLE if ch != "\x1b")
EXT_CHARS = "".join(EXTENSION_TABLE.values())
EMOJI = "😀🎉👍🏽🇩🇪𝄞"

gsm_text = st.text(alphabet=GSM_CHARS + EXT_CHARS, max_size=400)
ext_heavy_text = st.text(alphabet="x" + EXT_CHARS, max_size=400)
unicode_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300)
mixed_text = st.text(alphabet=st.sampled_from(GSM_CHARS + EXT_CHARS + EMOJI + "ĉЖ中"), max_size=300)
any_text = st.one_of(gsm_text, ext_heavy_text, unicode_text, mixed_text)

numbers = st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True)
alpha_senders = st.text(alphabet=GSM_CHARS, min_size=1, max_size=11)

timestamps = st.builds(
    lambda dt, q: dt.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=15 * q))),
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)),
    st.integers(min_value=-56, max_value=56),
)
