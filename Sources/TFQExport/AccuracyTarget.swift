import TFQModel

/// The accuracy an int8 export aims for by default, and the settings it tries to reach it.
///
/// The fastest int8 settings (groups of up to 64, two passes in the first block) keep most
/// of a model's predictions, but not always enough: on the five models of BENCHMARKS.md
/// ("The accuracy target by default") four need groups of 32 with every norm's readers in two
/// passes, and one whose int8 table is 30% of it needs its classifier in two passes and its
/// table in groups of 4 as well. Each step costs decode and prefill time. So the exporter
/// stages each setting, measures them all on the quality report's positions (one pass of the
/// fp32 model serves them all), and keeps the fastest that meets the target.
public struct QualityTarget: Sendable, Equatable {
    /// The least share of positions where both models rank the same token first, in percent.
    public var top1AgreementPercent = 99.5
    /// The most the perplexity may rise, in percent.
    public var deltaPerplexityPercent = 0.05
    /// The most mean KL(fp32 ‖ int8), in nats.
    public var meanKL = 5e-5
    /// The largest file, as a share of the fp32 weights.
    public var sizeRatio = 0.30

    /// The target of issue 23: top-1 ≥ 99.5%, Δppl ≤ 0.05%, mean KL ≤ 5e-5, ≤ 0.30× the fp32 weights.
    public init() {}

    /// Whether `quality`, of a file of `fileBytes` for `fp32Bytes` of fp32 weights, meets the target.
    public func isMet(by quality: QualityReport, fileBytes: Int, fp32Bytes: Int) -> Bool {
        quality.top1AgreementPercent >= top1AgreementPercent && quality.deltaPerplexityPercent <= deltaPerplexityPercent
            && quality.meanKL <= meanKL && Double(fileBytes) <= sizeRatio * Double(fp32Bytes)
    }
}

/// One setting an export measured on its way to the target.
public struct AccuracyTrial: Sendable {
    /// The setting, as the options that give it (empty: the fast settings).
    public var settings: OptionMessage
    /// Its quality report.
    public var quality: QualityReport
    /// The length of the file it would write, quality report included.
    public var fileBytes: Int
    /// Whether it met the target.
    public var met: Bool
}

extension ExportOptions {
    /// How the int8 settings (group sizes, layers in two passes) are chosen.
    public enum Accuracy: String, Sendable, CaseIterable {
        /// Measure ``accuracySteps(columns:tableColumns:)`` and keep the fastest whose
        /// quality report meets ``ExportOptions/target`` (none: the closest by mean KL within
        /// the size); without text to measure on, the fast settings.
        case target
        /// The settings as the options give them, unmeasured against any target.
        case fast
    }

    /// Whether any of the settings ``Accuracy/target`` chooses differs from the defaults.
    var setsAccuracySettings: Bool {
        groupSize != .auto || tableGroupSize != nil || twoPassLayers != 1 || twoPassClassifier || twoPassNormInputs
    }

    /// The settings ``Accuracy/target`` measures, fastest first, for int8 matrices of
    /// `columns` columns (the tables' `tableColumns`, when they are int8): the fast settings
    /// (groups of up to 64, two passes in the first block); groups of 32 (the largest multiple
    /// of 4 up to 32 that divides every row) with every norm's readers in two passes; and for
    /// int8 tables, the classifier in two passes too, with the tables in groups of 16, 8 and
    /// 4 (those finer than the others' that divide their rows). Each step costs run time: on
    /// this project's models the second costs about a seventh of one-thread decode and a
    /// quarter of prefill, the last up to 40% of decode where the table is most of the model.
    func accuracySteps(columns: [Int], tableColumns: Int?) -> [ExportOptions] {
        var fast = self
        fast.accuracy = .fast
        var normInputs = fast
        let group = stride(from: 32, through: 4, by: -4).first { g in columns.allSatisfy { $0 % g == 0 } } ?? 4
        normInputs.groupSize = .size(group)
        normInputs.twoPassNormInputs = true
        guard let tableColumns else { return [fast, normInputs] }
        return [fast, normInputs] + [16, 8, 4].filter { $0 < group && tableColumns % $0 == 0 }.map { tableGroup in
            var step = normInputs
            step.twoPassClassifier = true
            step.tableGroupSize = .size(tableGroup)
            return step
        }
    }

    /// The options that give this setting, beside the defaults (empty for the fast settings).
    var accuracySettings: OptionMessage {
        var parts: [OptionMessage] = []
        if groupSize != .auto { parts.append("\(option: "group_size") \(groupSize)") }
        if twoPassLayers != 1 { parts.append("\(option: "two_pass_layers") \(twoPassLayers == Int.max ? "all" : String(twoPassLayers))") }
        if twoPassNormInputs { parts.append("\(option: "two_pass_norm_inputs")") }
        if twoPassClassifier { parts.append("\(option: "two_pass_classifier")") }
        if let tableGroupSize { parts.append("\(option: "table_group_size") \(tableGroupSize)") }
        return parts.dropFirst().reduce(parts.first ?? "") { $0 + " " + $1 }
    }
}
