/// `value` with two decimals (tables and progress lines).
func format2(_ value: Double) -> String { fixed(value, digits: 2) }

/// `value` with four decimals (losses).
func format4(_ value: Double) -> String { fixed(value, digits: 4) }

/// Fixed-point text without Foundation's formatters; values too large for it (an untrained
/// model's perplexity can be e^40) and non-finite ones print as Swift prints a Double.
func fixed(_ value: Double, digits: Int) -> String {
    var unit = 1.0
    for _ in 0..<digits { unit *= 10 }
    guard value.isFinite, abs(value) * unit < 1e15 else { return String(value) }
    let scaled = Int((abs(value) * unit).rounded())
    let whole = scaled / Int(unit), fraction = String(scaled % Int(unit))
    let sign = value < 0 && scaled != 0 ? "-" : ""
    return sign + String(whole) + "." + String(repeating: "0", count: digits - fraction.count) + fraction
}
