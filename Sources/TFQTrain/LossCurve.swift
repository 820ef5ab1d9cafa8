import FoundationEssentials

/// The loss curves of a run as a small standalone SVG: training loss per step (light) and
/// validation loss at each evaluation (bold), on a shared axis.
enum LossCurve {
    static func write(evaluations: [TrainingState.Evaluation], trainLog: [MetricsLog.Entry], to path: String) throws {
        let width = 640.0, height = 360.0, left = 56.0, right = 16.0, top = 24.0, bottom = 40.0
        let train = trainLog.map { (Double($0.step), $0.loss) }
        let validation = evaluations.map { (Double($0.step), $0.valLoss) }
        let all = train + validation
        guard all.count >= 2, let maxStep = all.map(\.0).max(), maxStep > 0 else { return }
        let losses = all.map(\.1).filter(\.isFinite)
        guard var low = losses.min(), var high = losses.max() else { return }
        if high - low < 1e-6 { high += 0.5; low -= 0.5 }
        func x(_ step: Double) -> Double { left + step / maxStep * (width - left - right) }
        func y(_ loss: Double) -> Double { top + (high - loss) / (high - low) * (height - top - bottom) }
        func polyline(_ points: [(Double, Double)], color: String, stroke: Double) -> String {
            let coordinates = points.filter { $0.1.isFinite }.map { "\(format(x($0.0))),\(format(y($0.1)))" }.joined(separator: " ")
            return "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(stroke)\" points=\"\(coordinates)\"/>"
        }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for i in 0...4 {
            let loss = low + (high - low) * Double(i) / 4
            svg += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(format(y(loss)))\" y2=\"\(format(y(loss)))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(format(y(loss) + 4))\" text-anchor=\"end\">\(format(loss))</text>\n"
        }
        svg += "<text x=\"\(format((left + width) / 2))\" y=\"\(height - 8)\" text-anchor=\"middle\">step (0 to \(Int(maxStep)))</text>\n"
        svg += polyline(train, color: "#9ecae1", stroke: 1) + "\n"
        svg += polyline(validation, color: "#d62728", stroke: 2.5) + "\n"
        svg += "<text x=\"\(width - right)\" y=\"16\" text-anchor=\"end\"><tspan fill=\"#6baed6\">train loss</tspan>  <tspan fill=\"#d62728\">val loss</tspan></text>\n"
        svg += "</svg>\n"
        try Data(svg.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    private static func format(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return String(rounded)
    }
}
