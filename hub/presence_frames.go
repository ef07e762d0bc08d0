package hub

import "strconv"

// Server-to-client frames of presence (docs/protocol.md, Presence).

// joinLeaveFrame is {"op":"join","ch":..,"user":..,"info":..} or
// {"op":"leave","ch":..,"user":..}; info only when the user has one.
func joinLeaveFrame(ev presenceEvent) []byte {
	b := make([]byte, 0, 40+len(ev.ch)+len(ev.user)+len(ev.info))
	if ev.join {
		b = append(b, `{"op":"join","ch":`...)
	} else {
		b = append(b, `{"op":"leave","ch":`...)
	}
	b = appendQuoted(b, ev.ch)
	b = append(b, `,"user":`...)
	b = appendQuoted(b, ev.user)
	if ev.join && ev.info != nil {
		b = append(b, `,"info":`...)
		b = append(b, ev.info...)
	}
	b = append(b, '}')
	return textFrame(b)
}

// appendReplyHead starts the answer to a presence request: its op, its id
// if it had one, and its channel.
func appendReplyHead(b []byte, op string, req *request) []byte {
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, '"')
	if req.hasID {
		b = append(b, `,"id":`...)
		b = strconv.AppendUint(b, req.id, 10)
	}
	b = append(b, `,"ch":`...)
	return appendQuoted(b, req.ch)
}

// appendMember appends one member as a JSON object.
func appendMember(b []byte, m Member) []byte {
	b = append(b, `{"user":`...)
	b = appendQuoted(b, m.User)
	b = append(b, `,"clients":`...)
	b = strconv.AppendInt(b, int64(m.Clients), 10)
	if m.Info != nil {
		b = append(b, `,"info":`...)
		b = append(b, m.Info...)
	}
	return append(b, '}')
}

// presenceReplyFrame answers a presence request with members; more says
// that members after the last one were left out (the client asks again
// with "after").
func presenceReplyFrame(req *request, members []Member, more bool) []byte {
	b := appendReplyHead(make([]byte, 0, 64+48*len(members)), opPresence, req)
	b = append(b, `,"members":[`...)
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMember(b, m)
	}
	b = append(b, ']')
	if more {
		b = append(b, `,"more":true`...)
	}
	b = append(b, '}')
	return textFrame(b)
}

// presenceStatsFrame answers a presence_stats request.
func presenceStatsFrame(req *request, st PresenceStats) []byte {
	b := appendReplyHead(make([]byte, 0, 96), opPresenceStats, req)
	b = append(b, `,"users":`...)
	b = strconv.AppendInt(b, int64(st.Users), 10)
	b = append(b, `,"clients":`...)
	b = strconv.AppendInt(b, int64(st.Clients), 10)
	b = append(b, '}')
	return textFrame(b)
}

// memberSize is about the bytes m takes in a reply.
func memberSize(m Member) int { return 32 + quotedLen(m.User) + len(m.Info) }
