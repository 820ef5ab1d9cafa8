#if canImport(Glibc)
import Glibc
#endif
import CTFQ
import TFQFormat
import TFQModel
import TFQRuntime

/// Records `message` as the calling thread's last error and returns `status`.
func fail(_ status: tfq_status, _ message: String) -> tfq_status {
    LastError.set(message)
    return status
}

/// Records a library error's message and returns its status (``status(of:)``).
func fail(_ error: Error) -> tfq_status {
    fail(status(of: error), "\(error)")
}

/// The status a C caller gets for an error the library threw. The switches over the library's
/// error enums have no `default`, so a case added there fails this build until it is given a
/// status here.
func status(of error: Error) -> tfq_status {
    switch error {
    case let error as TFQFormatError:
        switch error.problem {
        case .io: return TFQ_ERROR_CANNOT_OPEN
        case .tooShort, .badMagic: return TFQ_ERROR_NOT_TFQ_FILE
        case .unsupportedVersion, .unsupported: return TFQ_ERROR_UNSUPPORTED
        case .tooLarge, .outOfMemory: return TFQ_ERROR_OUT_OF_MEMORY
        case .headerChecksum, .lengthMismatch, .badHeaderField, .indexChecksum, .badMetadata, .badDirectory, .badTensor,
             .tensorChecksum, .decode, .missingTensor:
            return TFQ_ERROR_FILE
        case .usage: return TFQ_ERROR_INTERNAL   // a writer's misuse: reading never throws it
        }
    case let error as SessionError:
        switch error {
        case .contextFull: return TFQ_ERROR_CONTEXT_FULL
        case .invalidToken: return TFQ_ERROR_INVALID_TOKEN
        case .noTokens: return TFQ_ERROR_NO_TOKENS
        case .modelFileDamaged: return TFQ_ERROR_FILE
        case .outOfMemory: return TFQ_ERROR_OUT_OF_MEMORY
        }
    case let error as TokenizerError:
        switch error {
        case .unknownCharacter: return TFQ_ERROR_UNKNOWN_CHARACTER
        case .invalidUTF8: return TFQ_ERROR_INVALID_UTF8
        }
    default:
        return TFQ_ERROR_INTERNAL
    }
}

/// Every status tfq.h defines, by name: what tfq_status_name returns.
let statusNames: [(status: tfq_status, name: String)] = [
    (TFQ_OK, "TFQ_OK"),
    (TFQ_ERROR_INVALID_ARGUMENT, "TFQ_ERROR_INVALID_ARGUMENT"),
    (TFQ_ERROR_FILE, "TFQ_ERROR_FILE"),
    (TFQ_ERROR_BUFFER_TOO_SMALL, "TFQ_ERROR_BUFFER_TOO_SMALL"),
    (TFQ_ERROR_CONTEXT_FULL, "TFQ_ERROR_CONTEXT_FULL"),
    (TFQ_ERROR_UNKNOWN_CHARACTER, "TFQ_ERROR_UNKNOWN_CHARACTER"),
    (TFQ_ERROR_CANNOT_OPEN, "TFQ_ERROR_CANNOT_OPEN"),
    (TFQ_ERROR_NOT_TFQ_FILE, "TFQ_ERROR_NOT_TFQ_FILE"),
    (TFQ_ERROR_UNSUPPORTED, "TFQ_ERROR_UNSUPPORTED"),
    (TFQ_ERROR_OUT_OF_MEMORY, "TFQ_ERROR_OUT_OF_MEMORY"),
    (TFQ_ERROR_INVALID_TOKEN, "TFQ_ERROR_INVALID_TOKEN"),
    (TFQ_ERROR_NO_TOKENS, "TFQ_ERROR_NO_TOKENS"),
    (TFQ_ERROR_INVALID_UTF8, "TFQ_ERROR_INVALID_UTF8"),
    (TFQ_ERROR_INTERNAL, "TFQ_ERROR_INTERNAL"),
]

/// The names as C strings, made once and never freed (static storage, as tfq.h says).
nonisolated(unsafe) private let statusCStrings: [UInt32: UnsafeMutablePointer<CChar>] =
    Dictionary(uniqueKeysWithValues: statusNames.map { ($0.status.rawValue, strdup($0.name)!) })
nonisolated(unsafe) private let unknownStatus: UnsafeMutablePointer<CChar> = strdup("TFQ_ERROR_UNKNOWN")!

/// C's `tfq_status_name` (contract in include/tfq.h): names from the table above, as C
/// strings made once and never freed.
@_cdecl("tfq_status_name")
public func tfq_status_name(_ status: tfq_status) -> UnsafePointer<CChar>? {
    UnsafePointer(statusCStrings[status.rawValue] ?? unknownStatus)
}
