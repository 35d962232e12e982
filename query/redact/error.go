package redact

// Reword returns err with the text msg in place of its own, still
// unwrapping to err (errors.Is and errors.As keep working), or err itself
// when msg is its text: what an error becomes once its text is redacted.
func Reword(err error, msg string) error {
	if err == nil || msg == err.Error() {
		return err
	}
	return &reworded{msg: msg, err: err}
}

type reworded struct {
	msg string
	err error
}

func (e *reworded) Error() string { return e.msg }
func (e *reworded) Unwrap() error { return e.err }

// ForSecrets returns a Redactor of secrets in every form they may be
// printed in (SecretForms), built once: a source redacts each of its
// errors with it.
func ForSecrets(secrets ...string) *Redactor {
	r := NewRedactor()
	for _, s := range secrets {
		r.Add(SecretForms(s)...)
	}
	return r
}
