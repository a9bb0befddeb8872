"""What each failure-cause code means and what to check for it (meanings from the diagnostics contract).

The one source of this advice: the HTML report shows it, and scripts/cause_table.py writes the
cause tables of docs/wireshark.md from it.
"""
from __future__ import annotations

from typing import NamedTuple


class Cause(NamedTuple):
    meaning: str
    check: str


CAUSES: dict[str, Cause] = {
    "ok": Cause("No finding.", "Nothing."),
    "no_response": Cause(
        "The client's SYNs to the mail port got no SYN-ACK (filtered by a firewall, host down).",
        "A firewall, ACL or cloud security group dropping port 25/587; the server down or the wrong MX "
        "address; outbound port 25 blocked by the ISP or cloud provider. Capture on the server side to see "
        "whether the SYN arrives; `nc -vz host 25` from the same client."),
    "connection_refused": Cause(
        "The SYN was answered by RST: the port is closed.",
        "The MTA is not running or listens only on localhost (`ss -ltnp | grep :25`, Postfix "
        "`inet_interfaces`); a firewall rejecting with TCP reset. Compare the RST's IP TTL with the server's "
        "other packets: a different TTL means a middlebox sent it."),
    "no_banner": Cause(
        "TCP was established, but no 220 greeting came before the client gave up or the capture ended.",
        "Server overloaded or tarpitting, slow reverse DNS of the client on the server, a proxy holding the "
        "banner; a plaintext client talking to implicit-TLS port 465 (the server waits for a TLS ClientHello)."),
    "greeting_rejected": Cause(
        "The greeting was 4xx/5xx (`554 … blocked`, `421 too many connections`).",
        "The client IP on a DNS blocklist, connection or rate limits, server in maintenance: read the reply "
        "text in the detail."),
    "pregreet": Cause(
        "The client sent data before the server's greeting (without the handshake in the capture too: the "
        "server's first bytes, by sequence number, are the greeting).",
        "Spam bots do this and postscreen-style defences drop them for it; a legitimate client doing so is "
        "broken or misconfigured."),
    "banner_masked": Cause(
        "The greeting text was replaced by asterisks (`220 ****…`) by a middlebox's SMTP inspection.",
        "Cisco ASA/PIX `inspect esmtp` banner masking (clients may then not offer ESMTP or STARTTLS): turn off "
        "banner masking in the ESMTP inspection policy, or `no inspect esmtp`."),
    "command_masked": Cause(
        "A client command was rewritten to `XXXX` by a middlebox, usually answered 500/502; seen from the "
        "client side, the reply quotes a masked verb the client never sent (`500 … \"XXXX\"`).",
        "ESMTP inspection (Cisco `inspect esmtp`) blocking verbs it does not allow (AUTH, STARTTLS, BDAT, "
        "extensions): allow the verb in the inspection policy or disable ESMTP inspection."),
    "starttls_stripped": Cause(
        "An EHLO capability was replaced by X's (`250-XXXXXXXA`, `250 XXXB`): STARTTLS hidden by a middlebox.",
        "ESMTP inspection (Cisco `inspect esmtp`) hiding STARTTLS: mail then travels in clear text, or a client "
        "that requires TLS gives up. If none of your firewalls is in the path, treat it as a downgrade attack "
        "and require TLS (MTA-STS, DANE, Postfix `smtp_tls_security_level = encrypt`)."),
    "tls_failed": Cause(
        "STARTTLS was answered 220, then no TLS handshake completed; or a client's TLS ClientHello (implicit "
        "TLS, e.g. on 465/993/995) was answered by a plaintext greeting.",
        "Read the TLS alert in the frames after STARTTLS (`tls.alert_message`): unknown CA, expired "
        "certificate, no common protocol version or cipher (an old client against a TLS 1.2+ server); a "
        "middlebox intercepting TLS. Reproduce with `openssl s_client -starttls smtp -connect host:25`. A "
        "plaintext greeting to a ClientHello: the client is set to implicit TLS where the server expects "
        "STARTTLS (port 587/25), or the port forwards to a plaintext service."),
    "auth_failed": Cause(
        "AUTH was answered 535 (or another 5xx).",
        "Wrong password, a locked account, plain AUTH refused without TLS, basic authentication disabled by "
        "the provider (app passwords or OAuth needed). The server's auth log has the reason (credentials are "
        "never shown here)."),
    "tempfail": Cause(
        "A 4xx reply stopped the client (greylisting, 421 outside DATA).",
        "Greylisting (`450 … greylisted, try again later`) is normal: the sending MTA must retry after a few "
        "minutes, from the same IP. Otherwise rate limits (421/451), mailbox full (452), a failing content "
        "filter, milter or DNS lookup on the server (451 local error)."),
    "rejected": Cause(
        "A 5xx reply stopped the client (relay denied, spam, a 503 bad sequence).",
        "Relay denied (client not authenticated or not in the relay networks), unknown user (550 5.1.1), "
        "spam/policy (554 5.7.1), SPF/DMARC failure, message too big (552), `503 bad sequence` (DATA after "
        "every RCPT was refused): read the enhanced status code in the detail."),
    "bare_lf_terminator": Cause(
        "Message data ended (or was treated as ended) by `<LF>.<LF>` or another non-`<CRLF>.<CRLF>` sequence.",
        "A client writing bare-LF line endings (scripts piping Unix text, old libraries, printers and "
        "scanners). Since the SMTP smuggling fixes (Postfix `smtpd_forbid_bare_newline`, patched Exchange and "
        "Sendmail) strict servers ignore such a terminator, wait and time out. Fix the client to send CRLF; "
        "exempt it only as a stopgap."),
    "smuggling_attempt": Cause(
        "A non-standard end-of-data sequence inside message data is followed by SMTP commands.",
        "The SMTP smuggling pattern (CVE-2023-51764 Postfix, CVE-2023-51765 Sendmail, CVE-2023-51766 Exim), "
        "whether or not this server fell for it. If the anomalies hold `nonstandard_terminator_accepted`, "
        "patch or reconfigure that server; investigate the client."),
    "data_not_terminated": Cause(
        "DATA was accepted (354), no `<CRLF>.<CRLF>` came, then the client closed or the capture ended.",
        "An AV/DLP gateway or proxy cutting the message (size limits, scanning timeouts), a client crash; if "
        "the detail says the capture ended, capture longer before concluding."),
    "data_timeout": Cause(
        "DATA was accepted, no terminator came, and the server replied 421 or closed after waiting.",
        "A bare-LF terminator the server does not accept (see `smtpdiag.terminator`), a stalled client, an "
        "MTU black hole, a store-and-forward AV gateway holding the data longer than the server's timeout."),
    "data_reset": Cause(
        "A RST (either side) during the DATA phase.",
        "An IPS/AV/DLP gateway cutting the session on content, a stateful firewall's idle or size limit, a "
        "server crash. Who sent the RST (the detail), its TTL compared with that host's other packets (a "
        "different TTL means a middlebox injected it) and the timing (always after N s or N bytes?) tell them "
        "apart."),
    "bdat_incomplete": Cause(
        "BDAT (CHUNKING) data shorter than announced, or no `LAST` chunk before the session ended.",
        "A client abort, a capture gap, or a middlebox that does not understand CHUNKING; as a workaround the "
        "server can stop offering it (Postfix `smtpd_discard_ehlo_keywords = chunking`)."),
    "mtu_blackhole": Cause(
        "Full-size segments were retransmitted with no ACK progress while small segments passed.",
        "Path MTU discovery broken: ICMP 'fragmentation needed' (type 3 code 4) or ICMPv6 'packet too big' "
        "filtered on a path with a tunnel, VPN or PPPoE link of lower MTU. Typical sign: EHLO fine, hangs in "
        "DATA with larger messages. Allow those ICMP messages, clamp the TCP MSS on the tunnel router (Cisco "
        "`ip tcp adjust-mss 1360`, Linux `iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j "
        "TCPMSS --clamp-mss-to-pmtu`) or lower the interface MTU."),
    "reset": Cause(
        "A RST outside DATA before the session ended normally (after a completed TLS handshake, a RST from "
        "the side with nothing left unanswered is the normal end: anomaly `tls_reset_close`, not this).",
        "Server-side limits or postscreen-like defences, a firewall idle timeout, a client abort: who sent it "
        "and when is in the detail."),
    "incomplete": Cause(
        "The capture holds too little of the session to judge (started mid-session, one direction only).",
        "One direction only (asymmetric routing, a SPAN port or capture filter seeing one way), a capture "
        "started mid-session, dropped packets (`tcp.analysis.lost_segment`): fix the capture, not the mail "
        "system."),
    "dns_nxdomain": Cause("The DNS name does not exist (rcode 3).", "A typo in the recipient domain, an expired domain."),
    "dns_servfail": Cause("The resolver failed (rcode 2).",
                          "DNSSEC validation failure, lame or broken authoritative servers (`dig +dnssec`, `delv`)."),
    "dns_refused": Cause("The resolver refused (rcode 5).", "The resolver's ACL does not allow recursion for this client."),
    "dns_no_response": Cause("The DNS query (and its retransmissions) was never answered.", "UDP/TCP 53 blocked, resolver down."),
    "dns_no_answer": Cause("NOERROR with no records of the asked type.",
                           "No MX record (mail then falls back to the A/AAAA record), no AAAA."),
    "pop_auth_failed": Cause("`-ERR` to USER/PASS/APOP/AUTH, and no later login succeeded.",
                             "Wrong credentials, plaintext login disabled without TLS (`-ERR … STLS first`), a "
                             "locked account."),
    "imap_auth_failed": Cause("`NO`/`BAD` to LOGIN/AUTHENTICATE, and no later login succeeded.",
                              "Wrong credentials, `LOGINDISABLED` without STARTTLS, a locked account; the tagged "
                              "reply's text often says which (`[AUTHENTICATIONFAILED]`)."),
}


def describe(code: str) -> Cause:
    """Meaning and advice for `code`; an unknown code gets a neutral text instead of an error."""
    return CAUSES.get(code, Cause(f"Cause code '{code}' (not in this version's list).",
                                  "See the detail sentence and the diagnostics contract."))
