// Package public marks the text of an error that a user of `gitmesh serve`
// may read: a sentence without server paths, addresses or secrets. The
// error's own text (Error) stays the full detail, for the log and for
// administrators.
// It knows nothing else of gitmesh.
package public

import "errors"

// Error carries the detail (Err) and what a user may be told (Msg).
type Error struct {
	Err error
	Msg string
}

// Error is the detail.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap gives the detail.
func (e *Error) Unwrap() error { return e.Err }

// New is an error whose text is fit for users as it is.
func New(msg string) error { return &Error{Err: errors.New(msg), Msg: msg} }

// Wrap tells users msg about err; nil stays nil.
func Wrap(err error, msg string) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, Msg: msg}
}

// Message is the outermost user text in err's chain.
func Message(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg, true
	}
	return "", false
}

// Reason is a phrase that says, fit for users, why one step failed ("it
// cannot be reached"); a sentence about the whole request names the
// thing it is about (see Message).
type Reason struct {
	Err error
	Why string
}

// Error is the detail.
func (e *Reason) Error() string { return e.Err.Error() }

// Unwrap gives the detail.
func (e *Reason) Unwrap() error { return e.Err }

// Because tells users why err happened, in a phrase; nil stays nil.
func Because(err error, why string) error {
	if err == nil {
		return nil
	}
	return &Reason{Err: err, Why: why}
}

// Why is the outermost reason in err's chain.
func Why(err error) (string, bool) {
	var e *Reason
	if errors.As(err, &e) {
		return e.Why, true
	}
	return "", false
}
