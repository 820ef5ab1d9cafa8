/// The metadata rules RFC 8259 leaves open and formats/tfq.md §7 closes: no byte-order
/// mark and no key twice in one object (parsers disagree on which duplicate wins).
enum StrictJSON {
    /// The first duplicated key, or nil. Assumes `json` is otherwise valid JSON.
    static func duplicateKey(in json: [UInt8]) -> String? {
        var objects: [Set<[UInt8]>?] = []  // one entry per open brace or bracket; nil for arrays
        var expectingKey = false
        var index = 0
        while index < json.count {
            let byte = json[index]
            switch byte {
            case UInt8(ascii: "{"): objects.append([]); expectingKey = true
            case UInt8(ascii: "["): objects.append(nil); expectingKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"): _ = objects.popLast(); expectingKey = false
            case UInt8(ascii: ","): expectingKey = objects.last.map { $0 != nil } ?? false
            case UInt8(ascii: ":"): expectingKey = false
            case UInt8(ascii: "\""):
                let start = index + 1
                index += 1
                while index < json.count && json[index] != UInt8(ascii: "\"") {
                    index += json[index] == UInt8(ascii: "\\") ? 2 : 1
                }
                if expectingKey, objects.last != nil, let last = objects.indices.last {
                    let key = Array(json[start..<min(index, json.count)])
                    if objects[last]!.insert(key).inserted == false { return String(decoding: key, as: UTF8.self) }
                }
            default: break
            }
            index += 1
        }
        return nil
    }

    static func hasByteOrderMark(_ json: [UInt8]) -> Bool { json.starts(with: [0xEF, 0xBB, 0xBF]) }
}
