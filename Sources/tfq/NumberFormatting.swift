/// `value` with one decimal (sizes, rates).
func format1(_ value: Double) -> String { fixed(value, digits: 1) }

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

/// `value` in scientific notation with `digits` decimals, as C's `%.*e` prints it (`2.9e-05`),
/// for figures whose size is the point (KL divergences); 0 prints as `0`, a non-finite value
/// as Swift prints a Double.
func scientific(_ value: Double, digits: Int = 1) -> String {
    guard value.isFinite, value != 0 else { return value == 0 ? "0" : String(value) }
    var exponent = 0, mantissa = abs(value)
    while mantissa >= 10 { mantissa /= 10; exponent += 1 }
    while mantissa < 1 { mantissa *= 10; exponent -= 1 }
    var text = fixed(mantissa, digits: digits)
    if text.hasPrefix("10") {   // 9.96 rounded up to 10.0
        exponent += 1
        text = fixed(mantissa / 10, digits: digits)
    }
    let power = String(abs(exponent))
    return (value < 0 ? "-" : "") + text + "e" + (exponent < 0 ? "-" : "+") + (power.count < 2 ? "0" : "") + power
}
