"""The error tables: retry split for sending, compat statuses, TP-ST classes."""

import pytest

from simhive.agent.modem.base import SendError, SendOutcome
from simhive.agent.modem.errors import (
    CME_ERRORS,
    CMS_ERRORS,
    ErrorKind,
    ReportState,
    cme_error,
    cms_error,
    registration_failure_status,
    render_markdown,
    report_compat_status,
    report_meaning,
    report_state,
    send_error,
)

# The retry split for sending.
SPEC_RETRY = [41, 42, 47, 192, 194, 314, 331, 332, 500]
SPEC_NEVER_RETRY = [1, 8, 10, 21, 28, 29, 30, 50, 96, 195, 196]


@pytest.mark.parametrize("code", SPEC_RETRY)
def test_spec_transient_cms_codes_are_retried(code) -> None:
    assert cms_error(code).kind is ErrorKind.RETRYABLE
    assert cms_error(code).outcome is SendOutcome.RETRY


@pytest.mark.parametrize("code", [*SPEC_NEVER_RETRY, 304, 330])
def test_spec_final_cms_codes_are_not_retried(code) -> None:
    err = cms_error(code)
    assert err.outcome is SendOutcome.PERMANENT
    assert err.kind is (ErrorKind.CONFIG if code == 330 else ErrorKind.PERMANENT)


@pytest.mark.parametrize(
    ("family", "code", "status"),
    [
        # docs/compat-api.md's status codes.
        ("CMS", 331, 10),
        ("CME", 30, 10),
        ("CMS", 304, 11),
        ("CMS", 305, 11),
        ("CMS", 310, 100),
        ("CMS", 311, 100),
        ("CMS", 316, 100),
        ("CME", 10, 100),
        ("CME", 11, 100),
        ("CME", 12, 100),
        ("CMS", 41, 9),
        ("CMS", 500, 9),
        ("CMS", 1, 9),
        ("CME", 100, 9),
    ],
)
def test_compat_status_mapping(family, code, status) -> None:
    err = cms_error(code) if family == "CMS" else cme_error(code)
    assert err.status == status


def test_sim_busy_is_transient_in_both_families() -> None:
    assert cms_error(314).kind is cme_error(14).kind is ErrorKind.RETRYABLE


def test_unknown_codes_are_retryable_and_described() -> None:
    assert cms_error(77).kind is ErrorKind.RETRYABLE
    assert "network (RP) cause" in cms_error(77).meaning
    assert "vendor" in cms_error(9999).meaning
    assert cme_error(777).outcome is SendOutcome.RETRY


def test_tables_are_consistent() -> None:
    for table, family in ((CMS_ERRORS, "CMS"), (CME_ERRORS, "CME")):
        for code, err in table.items():
            assert err.code == code and err.family == family and err.meaning
            assert err.status in (9, 10, 11, 12, 100)


def test_send_error_carries_code_and_outcome() -> None:
    e = send_error(cms_error(331), parts_sent=1, context="part 2 of 3")
    assert isinstance(e, SendError)
    assert (e.outcome, e.status, e.cms, e.cme, e.parts_sent) == (
        SendOutcome.RETRY,
        10,
        331,
        None,
        1,
    )
    assert "part 2 of 3" in str(e) and "331" in str(e)
    e = send_error(cme_error(11))
    assert (e.outcome, e.status, e.cms, e.cme) == (SendOutcome.PERMANENT, 100, None, 11)


def test_registration_status() -> None:
    assert [registration_failure_status(s) for s in range(6)] == [10, None, 10, 10, 10, None]


@pytest.mark.parametrize(
    ("st", "state", "compat"),
    [
        (0x00, ReportState.DELIVERED, 7),
        (0x01, ReportState.DELIVERED, 7),
        (0x02, ReportState.DELIVERED, 7),
        (0x1F, ReportState.DELIVERED, 7),
        (0x20, ReportState.PENDING, None),
        (0x25, ReportState.PENDING, None),
        (0x3F, ReportState.PENDING, None),
        (0x40, ReportState.FAILED, 8),
        (0x46, ReportState.FAILED, 8),  # validity period expired
        (0x49, ReportState.FAILED, 8),
        (0x60, ReportState.FAILED, 8),
        (0x65, ReportState.FAILED, 8),
        (0x7F, ReportState.FAILED, 8),
        (0xFF, ReportState.FAILED, 8),
    ],
)
def test_tp_st_classification(st, state, compat) -> None:
    assert report_state(st) is state
    assert report_compat_status(st) == compat


def test_tp_st_meanings() -> None:
    assert report_meaning(0x46) == "SM validity period expired"
    assert report_meaning(0x30) == "pending, unlisted TP-ST 0x30"
    with pytest.raises(ValueError):
        report_state(256)


def test_markdown_lists_every_code() -> None:
    md = render_markdown()
    assert md.count("\n") == 2 + len(CMS_ERRORS) + len(CME_ERRORS)
    assert "| +CMS 304 | invalid PDU mode parameter | permanent | 11 |" in md
