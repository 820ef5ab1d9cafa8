import Testing
@testable import TFQExport
@testable import TFQFormat

/// Which tensors int8 export quantizes, and which layers it asks to run in two passes.
@Suite struct ExportChoicesTests {
    static func tensor(_ name: String, _ shape: [Int]) -> TensorInfo {
        TensorInfo(name: name, dtype: .f32, encoding: .raw, layout: .rowMajor, groupSize: 0, shape: shape,
                   offset: 0, storedLength: 0, decodedLength: 0, crc32: 0)
    }

    /// A gpt model's tensors: `layers` blocks of width `dim`, a vocabulary of `vocab`.
    static func gpt(vocab: Int, dim: Int, layers: Int, tied: Bool) -> [TensorInfo] {
        var tensors = [tensor("tok_emb", [vocab, dim]), tensor("pos_emb", [64, dim])]
        for i in 0..<layers {
            tensors += [tensor("blocks.\(i).ln1.weight", [dim]), tensor("blocks.\(i).attn.qkv.weight", [3 * dim, dim]),
                        tensor("blocks.\(i).attn.proj.weight", [dim, dim]), tensor("blocks.\(i).ffn.up.weight", [4 * dim, dim]),
                        tensor("blocks.\(i).ffn.down.weight", [dim, 4 * dim])]
        }
        return tensors + [tensor("ln_f.weight", [dim])] + (tied ? [] : [tensor("lm_head.weight", [vocab, dim])])
    }

    static func options(_ embedding: ExportOptions.EmbeddingPrecision, twoPass: Int = 1) -> ExportOptions {
        var options = ExportOptions(precision: .int8, threads: 1)
        options.embedding = embedding
        options.twoPassLayers = twoPass
        return options
    }

    @Test func autoKeepsSmallTablesInFP32AndQuantizesLargeOnes() {
        // The Shakespeare model's shape: a 65-character table is 1% of the parameters.
        let small = Self.gpt(vocab: 65, dim: 128, layers: 4, tied: true)
        let quantized = Exporter.quantizedNames(small, options: Self.options(.auto))
        #expect(!quantized.contains("tok_emb") && !quantized.contains("pos_emb") && !quantized.contains("ln_f.weight"))
        #expect(quantized.count == 16 && quantized.contains("blocks.3.ffn.down.weight"))
        // Two untied 4,000-token tables are most of a small model: they are quantized.
        let large = Self.gpt(vocab: 4000, dim: 128, layers: 4, tied: false)
        let all = Exporter.quantizedNames(large, options: Self.options(.auto))
        #expect(all.contains("tok_emb") && all.contains("lm_head.weight") && all.count == 18)
        // 1/64 is the line between fp32 and fp16: 8,192 table parameters beside 524,288 in all.
        let edge = [Self.tensor("tok_emb", [64, 128]), Self.tensor("blocks.0.attn.qkv.weight", [4032, 128])]
        #expect(!Exporter.quantizedNames(edge, options: Self.options(.auto)).contains("tok_emb"))
        #expect(Exporter.tablePrecision(edge, options: Self.options(.auto)) == .fp32)
        let over = [Self.tensor("tok_emb", [65, 128]), Self.tensor("blocks.0.attn.qkv.weight", [4031, 128])]
        #expect(Exporter.tablePrecision(over, options: Self.options(.auto)) == .fp16)
    }

    /// `auto` by the tables' share of the parameters: fp32 up to 1/64, fp16 up to 1/6 (the
    /// position table then goes fp16 with them), int8 beyond.
    @Test func autoStoresMidSizedTablesAsHalves() {
        let auto = Self.options(.auto)
        // War and Peace's 1,024-token tied BPE model: the table is 14% of the parameters.
        let bpe = Self.gpt(vocab: 1024, dim: 128, layers: 4, tied: true)
        #expect(Exporter.tablePrecision(bpe, options: auto) == .fp16)
        #expect(!Exporter.quantizedNames(bpe, options: auto).contains("tok_emb") && Exporter.quantizedNames(bpe, options: auto).count == 16)
        #expect(Exporter.halfNames(bpe, options: auto) == ["tok_emb", "pos_emb"])
        let untied = Self.gpt(vocab: 512, dim: 128, layers: 4, tied: false)
        #expect(Exporter.halfNames(untied, options: auto) == ["tok_emb", "lm_head.weight", "pos_emb"])
        // 1/6 is the line: 1,024 table parameters beside 6,144 in all.
        let edge = [Self.tensor("tok_emb", [8, 128]), Self.tensor("blocks.0.attn.qkv.weight", [40, 128])]
        #expect(Exporter.tablePrecision(edge, options: auto) == .fp16)
        let over = [Self.tensor("tok_emb", [8, 128]), Self.tensor("blocks.0.attn.qkv.weight", [39, 128])]
        #expect(Exporter.tablePrecision(over, options: auto) == .int8 && Exporter.halfNames(over, options: auto).isEmpty)
        // Small tables stay fp32, large ones int8: no halves either way.
        #expect(Exporter.tablePrecision(Self.gpt(vocab: 65, dim: 128, layers: 4, tied: true), options: auto) == .fp32)
        #expect(Exporter.halfNames(Self.gpt(vocab: 65, dim: 128, layers: 4, tied: true), options: auto).isEmpty)
        #expect(Exporter.tablePrecision(Self.gpt(vocab: 4000, dim: 128, layers: 4, tied: false), options: auto) == .int8)
        // Asked for, whatever the size; and only in an int8 export.
        #expect(Exporter.halfNames(Self.gpt(vocab: 4000, dim: 128, layers: 2, tied: false), options: Self.options(.fp16)).count == 3)
        var fp32 = Self.options(.fp16)
        fp32.precision = .fp32
        #expect(Exporter.halfNames(bpe, options: fp32).isEmpty && Exporter.quantizedNames(bpe, options: fp32).isEmpty)
    }

    @Test func explicitChoicesWin() {
        let small = Self.gpt(vocab: 65, dim: 128, layers: 2, tied: false)
        #expect(Exporter.quantizedNames(small, options: Self.options(.int8)).isSuperset(of: ["tok_emb", "lm_head.weight"]))
        let large = Self.gpt(vocab: 4000, dim: 128, layers: 2, tied: false)
        #expect(Exporter.quantizedNames(large, options: Self.options(.fp32)).isDisjoint(with: ["tok_emb", "lm_head.weight"]))
        var fp16 = Self.options(.auto)
        fp16.precision = .fp16
        #expect(Exporter.quantizedNames(small, options: fp16).isEmpty)
    }

    @Test(arguments: [0, 1, 2, 9])
    func twoPassCoversTheFirstBlocks(layers: Int) {
        let tensors = Self.gpt(vocab: 4000, dim: 64, layers: 3, tied: true)
        let quantized = Exporter.quantizedNames(tensors, options: Self.options(.auto))
        let linears = Set(tensors.map(\.name).filter { $0.contains(".attn.") || $0.contains(".ffn.") })
        let names = Exporter.twoPassNames(quantized, options: Self.options(.auto, twoPass: layers), linears: linears, classifier: "tok_emb")
        #expect(names.count == 4 * min(layers, 3))
        #expect(names == names.sorted() && !names.contains("tok_emb"))
        #expect(names.allSatisfy { Int($0.split(separator: ".")[1])! < layers })
        // Only linear layers, and no name it cannot parse.
        let odd: Set = ["blocks.", "blocks.x.attn.qkv.weight", "blocks.0.extra"]
        #expect(Exporter.twoPassNames(quantized.union(odd), options: Self.options(.auto, twoPass: 9), linears: linears.union(["blocks."]),
                                      classifier: "tok_emb")
                == Exporter.twoPassNames(quantized, options: Self.options(.auto, twoPass: 9), linears: linears, classifier: "tok_emb"))
    }

    /// --two-pass-norm-inputs adds, in every block, the layers that read a norm's output:
    /// qkv and up (gpt), and gate (llama), on top of the first blocks' layers; not the
    /// projection, the down layer or the classifier.
    @Test(arguments: [0, 1])
    func twoPassNormInputsCoverEveryBlock(layers: Int) {
        let tensors = Self.gpt(vocab: 4000, dim: 64, layers: 3, tied: true)
        var options = Self.options(.auto, twoPass: layers)
        options.twoPassNormInputs = true
        let quantized = Exporter.quantizedNames(tensors, options: options)
        let linears = Set(tensors.map(\.name).filter { $0.contains(".attn.") || $0.contains(".ffn.") }).union(["tok_emb"])
        let names = Exporter.twoPassNames(quantized, options: options, linears: linears, classifier: "tok_emb")
        let normInputs = (0..<3).flatMap { ["blocks.\($0).attn.qkv.weight", "blocks.\($0).ffn.up.weight"] }
        let firstBlock = layers == 0 ? [] : ["blocks.0.attn.proj.weight", "blocks.0.ffn.down.weight"]
        #expect(names == (normInputs + firstBlock).sorted())
        let llama = quantized.union((0..<3).map { "blocks.\($0).ffn.gate.weight" })
        let gates = Exporter.twoPassNames(llama, options: options, linears: linears.union(llama), classifier: "tok_emb")
        #expect(gates.filter { $0.hasSuffix("ffn.gate.weight") }.count == 3)
        options.twoPassNormInputs = false
        #expect(Exporter.twoPassNames(quantized, options: options, linears: linears, classifier: "tok_emb").count == 4 * layers)
    }

    /// --two-pass-classifier adds the head, whatever it is called, when it is int8.
    @Test(arguments: [true, false])
    func twoPassClassifierAddsTheHead(tied: Bool) {
        let tensors = Self.gpt(vocab: 4000, dim: 64, layers: 2, tied: tied)
        let head = tied ? "tok_emb" : "lm_head.weight"
        var options = Self.options(.auto, twoPass: 1)
        options.twoPassClassifier = true
        let quantized = Exporter.quantizedNames(tensors, options: options)
        let linears = Set(tensors.map(\.name).filter { $0.contains(".attn.") || $0.contains(".ffn.") }).union([head])
        let names = Exporter.twoPassNames(quantized, options: options, linears: linears, classifier: head)
        #expect(names.count == 5 && names.contains(head) && !names.contains(tied ? "lm_head.weight" : "tok_emb"))
        options.twoPassClassifier = false
        #expect(!Exporter.twoPassNames(quantized, options: options, linears: linears, classifier: head).contains(head))
        // An fp32 table is no int8 layer: nothing to quantize twice.
        options.twoPassClassifier = true
        options.embedding = .fp32
        #expect(!Exporter.twoPassNames(Exporter.quantizedNames(tensors, options: options), options: options, linears: linears,
                                       classifier: head).contains(head))
    }

    @Test func tablesHaveTheirOwnGroupSize() throws {
        var options = Self.options(.int8)
        options.groupSize = .size(64)
        options.tableGroupSize = .size(16)
        #expect(options.group(for: "tok_emb", columns: 128) == 16 && options.group(for: "lm_head.weight", columns: 128) == 16)
        #expect(options.group(for: "blocks.0.attn.qkv.weight", columns: 128) == 64)
        options.tableGroupSize = nil
        #expect(options.group(for: "tok_emb", columns: 128) == 64)
        let tensors = Self.gpt(vocab: 100, dim: 96, layers: 1, tied: false).filter { $0.shape.count == 2 && $0.name != "pos_emb" }
        options.groupSize = .auto
        options.tableGroupSize = .size(64)   // 96 columns: blocks get 48, tables 64 does not divide
        #expect(throws: ExportError.self) { try Exporter.checkGroupSizes(options: options, tensors: tensors) }
        options.tableGroupSize = .size(6)
        #expect(throws: ExportError.self) { try Exporter.checkGroupSizes(options: options, tensors: tensors) }
        options.tableGroupSize = .size(32)
        try Exporter.checkGroupSizes(options: options, tensors: tensors)
    }

    /// The settings the accuracy target measures, fastest first.
    @Test func accuracyStepsGoFromFastToFine() {
        let fast = Self.options(.auto)
        #expect(!fast.setsAccuracySettings)
        // Tables kept fp16 or fp32: the fast settings, then groups of 32 with the norms' readers in two passes.
        let two = fast.accuracySteps(columns: [128, 512], tableColumns: nil)
        #expect(two.map(\.accuracySettings.description) == ["", "group_size 32 two_pass_norm_inputs"])
        #expect(two.allSatisfy { $0.accuracy == .fast } && two[0].twoPassLayers == 1 && two[1].twoPassLayers == 1)
        // int8 tables add the classifier in two passes and finer table groups.
        let five = fast.accuracySteps(columns: [128, 512], tableColumns: 128)
        #expect(Array(five.map(\.accuracySettings.description).dropFirst(2)) == [16, 8, 4].map {
            "group_size 32 two_pass_norm_inputs two_pass_classifier table_group_size \($0)" })
        // Rows that 32 does not divide: the largest multiple of 4 below it that divides them
        // all, and only table groups finer than that.
        let odd = fast.accuracySteps(columns: [48, 192], tableColumns: 48)
        #expect(Array(odd.map(\.accuracySettings.description).dropFirst()) == [
            "group_size 24 two_pass_norm_inputs", "group_size 24 two_pass_norm_inputs two_pass_classifier table_group_size 16",
            "group_size 24 two_pass_norm_inputs two_pass_classifier table_group_size 8",
            "group_size 24 two_pass_norm_inputs two_pass_classifier table_group_size 4"])
        #expect(fast.accuracySteps(columns: [40], tableColumns: 40).map(\.accuracySettings.description) == [
            "", "group_size 20 two_pass_norm_inputs", "group_size 20 two_pass_norm_inputs two_pass_classifier table_group_size 8",
            "group_size 20 two_pass_norm_inputs two_pass_classifier table_group_size 4"])
        // Any of those set by hand is a setting the target would choose.
        for edit: (inout ExportOptions) -> Void in [{ $0.groupSize = .size(64) }, { $0.tableGroupSize = .size(16) }, { $0.twoPassLayers = 0 },
                                                    { $0.twoPassClassifier = true }, { $0.twoPassNormInputs = true }] {
            var options = fast
            edit(&options)
            #expect(options.setsAccuracySettings)
        }
    }
}
