/// The tfq release this build is, the one place it is spelled.
///
/// `tfq --version`, the provenance written into every file, and the C API's version call
/// all read it from here.
public enum TFQVersion {
    /// The release number, "major.minor.patch".
    public static let string = "0.1.0"
}
