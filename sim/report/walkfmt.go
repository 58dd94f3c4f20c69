package report

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// circled numbers hops as the seed does: ① ② ③ ...
func circled(n int) string {
	if n >= 1 && n <= 20 {
		return string(rune(0x2460 + n - 1))
	}
	return fmt.Sprintf("(%d)", n)
}

// Title is the walk's one-line summary.
func (w *Walk) Title() string {
	q := w.Query
	var b strings.Builder
	fmt.Fprintf(&b, "request %d of traffic %s", q.Seq, q.Traffic)
	if q.Kind != "" {
		fmt.Fprintf(&b, " (%s)", q.Kind)
	}
	if len(w.Request) > 0 {
		h := w.Request[0]
		fmt.Fprintf(&b, ": %s → %s", endpoint(h.IP.Src.String(), h.SrcPort, h.Proto), endpoint(h.IP.Dst.String(), h.DstPort, h.Proto))
		fmt.Fprintf(&b, " at %s", h.Time.Format("15:04:05.000000"))
	}
	if q.Backend != "" {
		fmt.Fprintf(&b, ", answered by %s", q.Backend)
	}
	if q.Err != "" {
		fmt.Fprintf(&b, ", failed: %s", q.Err)
	}
	return b.String()
}

func endpoint(addr string, port uint16, proto string) string {
	if proto == "tcp" || proto == "udp" {
		return fmt.Sprintf("%s:%d", addr, port)
	}
	return addr
}

func modeName(m string) string {
	if m == "" {
		return "no director crossed"
	}
	if m == "FULLNAT" {
		return "FULLNAT"
	}
	return "LVS-" + m
}

// WriteText prints the walk for a terminal (lvslab explain).
func (w *Walk) WriteText(out io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Walk of %s\n", w.Title())
	fmt.Fprintf(&b, "Found %s. Forwarding: %s\n\n", w.Matched, modeName(w.Mode))
	w.writeHops(&b)
	b.WriteString("Findings:\n")
	for _, f := range w.Findings {
		fmt.Fprintf(&b, "  %s %s\n", mark(f.OK), f.Text)
	}
	if len(w.Conversation) > 0 {
		b.WriteString("\nEvery packet of this connection, on every segment:\n")
		writeConversation(&b, w.Conversation, w.ConversationMore)
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// Markdown renders the walk as a section of the report (walk.md and the
// summary).
func (w *Walk) Markdown(heading string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s Hop-by-hop walk\n\n", heading)
	fmt.Fprintf(&b, "%s, found in the segment captures %s. Forwarding: **%s**.\n\n", capitalize(w.Title()), w.Matched, modeName(w.Mode))
	b.WriteString("```text\n")
	w.writeHops(&b)
	b.WriteString("```\n\n")
	b.WriteString("Findings:\n\n")
	for _, f := range w.Findings {
		fmt.Fprintf(&b, "- %s %s\n", mark(f.OK), f.Text)
	}
	if len(w.Conversation) > 0 {
		b.WriteString("\nEvery packet of this connection, on every segment:\n\n```text\n")
		writeConversation(&b, w.Conversation, w.ConversationMore)
		b.WriteString("```\n")
	}
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func mark(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

func (w *Walk) writeHops(b *strings.Builder) {
	n := 0
	b.WriteString("The request, hop by hop:\n\n")
	for i := range w.Request {
		n++
		writeHop(b, n, &w.Request[i])
	}
	if len(w.Reply) == 0 {
		b.WriteString("The reply: not seen in the captures.\n\n")
		return
	}
	b.WriteString("The reply, hop by hop:\n\n")
	for i := range w.Reply {
		n++
		writeHop(b, n, &w.Reply[i])
	}
}

func writeHop(b *strings.Builder, n int, h *Hop) {
	fmt.Fprintf(b, "%s %s  segment %s  (frame %d of %s)\n", circled(n), since(h.Since), h.Segment, h.Frame, h.File)
	fmt.Fprintf(b, "   Ethernet    %s%s → %s%s\n", h.SrcMAC, paren(h.SrcName), h.DstMAC, paren(h.DstName))
	if h.Outer != nil {
		fmt.Fprintf(b, "   IPv4 outer  %s → %s  TTL %d  protocol 4 (IP-in-IP)\n", h.Outer.Src, h.Outer.Dst, h.Outer.TTL)
		fmt.Fprintf(b, "   IPv4 inner  %s → %s  TTL %d\n", h.IP.Src, h.IP.Dst, h.IP.TTL)
	} else {
		fmt.Fprintf(b, "   IPv4        %s → %s  TTL %d  ID 0x%04x\n", h.IP.Src, h.IP.Dst, h.IP.TTL, h.IP.ID)
	}
	switch h.Proto {
	case "tcp":
		fmt.Fprintf(b, "   TCP         %d → %d  %s  seq %d", h.SrcPort, h.DstPort, h.Flags, h.Seq)
		if strings.Contains(h.Flags, "ACK") {
			fmt.Fprintf(b, "  ack %d", h.Ack)
		}
		fmt.Fprintf(b, "  len %d\n", h.Payload)
	case "udp":
		fmt.Fprintf(b, "   UDP         %d → %d  len %d\n", h.SrcPort, h.DstPort, h.Payload)
	case "icmp":
		fmt.Fprintf(b, "   ICMP        %s\n", h.ICMP)
	default:
		fmt.Fprintf(b, "   protocol %s, %d bytes\n", h.Proto, h.Payload)
	}
	if len(h.Changed) > 0 {
		fmt.Fprintf(b, "   changed     %s\n", strings.Join(h.Changed, "; "))
	}
	if h.ARP != "" {
		fmt.Fprintf(b, "   MAC from    %s\n", h.ARP)
	}
	b.WriteString("\n")
}

func since(d time.Duration) string {
	return fmt.Sprintf("+%.6fs", d.Seconds())
}

func writeConversation(b *strings.Builder, rows []Hop, more int) {
	segw := 0
	for _, h := range rows {
		segw = max(segw, len(h.Segment))
	}
	for _, h := range rows {
		what := h.ICMP
		if h.Proto == "tcp" {
			what = h.Flags
		}
		flow := fmt.Sprintf("%s → %s", endpoint(h.IP.Src.String(), h.SrcPort, h.Proto), endpoint(h.IP.Dst.String(), h.DstPort, h.Proto))
		macs := fmt.Sprintf("%s → %s", orMAC(h.SrcName, h.SrcMAC), orMAC(h.DstName, h.DstMAC))
		if h.Outer != nil {
			macs += fmt.Sprintf(" (in IP-in-IP %s → %s)", h.Outer.Src, h.Outer.Dst)
		}
		fmt.Fprintf(b, "  %s  %-*s  %-45s %-12s len %-5d %s\n", since(h.Since), segw, h.Segment, flow, what, h.Payload, macs)
	}
	if more > 0 {
		fmt.Fprintf(b, "  ... and %d more\n", more)
	}
}

func orMAC(name, mac string) string {
	if name != "" {
		return name
	}
	return mac
}
