import CTFQ

// @_cdecl exports a Swift function under a C name, but nothing ties it to the declaration in
// tfq.h: a parameter of the wrong width, constness or optionality would compile, link, and
// misread its arguments at run time. Each line below compiles only when the two functions'
// types are identical (metatypes do not convert), so any drift between the header and this
// module is a build error. TFQCAPITests checks that every function tfq.h declares is here.

/// Compiles only when both are the same type.
private func same<T>(_: T.Type, _: T.Type) {}

/// Never called: its compilation is the check.
private func signaturesMatchTheHeader() {
    same(type(of: CTFQ.tfq_version), type(of: TFQCAPI.tfq_version))
    same(type(of: CTFQ.tfq_last_error), type(of: TFQCAPI.tfq_last_error))
    same(type(of: CTFQ.tfq_status_name), type(of: TFQCAPI.tfq_status_name))
    same(type(of: CTFQ.tfq_model_open), type(of: TFQCAPI.tfq_model_open))
    same(type(of: CTFQ.tfq_model_open_flags), type(of: TFQCAPI.tfq_model_open_flags))
    same(type(of: CTFQ.tfq_model_close), type(of: TFQCAPI.tfq_model_close))
    same(type(of: CTFQ.tfq_model_get_info), type(of: TFQCAPI.tfq_model_get_info))
    same(type(of: CTFQ.tfq_tokenize), type(of: TFQCAPI.tfq_tokenize))
    same(type(of: CTFQ.tfq_detokenize), type(of: TFQCAPI.tfq_detokenize))
    same(type(of: CTFQ.tfq_session_new), type(of: TFQCAPI.tfq_session_new))
    same(type(of: CTFQ.tfq_session_free), type(of: TFQCAPI.tfq_session_free))
    same(type(of: CTFQ.tfq_session_reset), type(of: TFQCAPI.tfq_session_reset))
    same(type(of: CTFQ.tfq_session_position), type(of: TFQCAPI.tfq_session_position))
    same(type(of: CTFQ.tfq_session_eval), type(of: TFQCAPI.tfq_session_eval))
    same(type(of: CTFQ.tfq_generate), type(of: TFQCAPI.tfq_generate))
}
