import NIOCore
import OCPPWire
import Testing

@Suite("JSON values")
struct JSONTests {
    @Test("numbers keep their exact text and objects their order")
    func exactness() throws {
        let value = try JSONParser.parse(#"{"z":0.1,"a":1e-7,"m":[-0,12345678901234567890.5]}"#)
        #expect(value.objectValue?.keys == ["z", "a", "m"])
        #expect(value["z"] == .number("0.1"))
        #expect(value["a"] == .number("1e-7"))
        #expect(JSONWriter.string(value) == #"{"z":0.1,"a":1e-7,"m":[-0,12345678901234567890.5]}"#)
    }

    @Test("strings decode escapes and surrogate pairs, and write back escaped")
    func strings() throws {
        let value = try JSONParser.parse(#"["a\"b\\c\n\u00e9\ud83d\ude00"]"#)
        #expect(value[0] == .string("a\"b\\c\né😀"))
        #expect(JSONWriter.string(value) == "[\"a\\\"b\\\\c\\né😀\"]")
        #expect(JSONWriter.string(.string("\u{01}")) == #""\u0001""#)
        // Strings with nothing to escape are written as they are; one escape anywhere is still found.
        #expect(JSONWriter.string(.string("CP-ü 7/MeterValues")) == #""CP-ü 7/MeterValues""#)
        #expect(JSONWriter.string(.string(String(repeating: "x", count: 40) + "\t")) == "\"" + String(repeating: "x", count: 40) + "\\t\"")
    }

    @Test(
        "invalid JSON is refused with the offset of the problem",
        arguments: [
            (#"{"a":1,}"#, 7), ("[1 2]", 3), (#"{"a" 1}"#, 5), ("01", 1), ("[1.]", 3), ("tru", 0), ("\"a\u{01}\"", 2),
            (#""\x""#, 2), ("[", 1), (#""\ud800""#, 7),
        ]
    )
    func invalid(text: String, offset: Int) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
        do {
            _ = try JSONParser.parse(text)
        } catch let error as JSONParseError {
            #expect(error.offset == offset, "\(text): \(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(!text.utf8.withContiguousStorageIfAvailable { JSONParser.isValid(UnsafeRawBufferPointer($0)) }!)
    }

    @Test("a quote, an escape or a control character ends a string's plain run wherever it falls in the eight-byte steps")
    func stringBoundaries() throws {
        for length in 0..<20 {
            for at in 0...length {
                let before = String(repeating: "x", count: at)
                let after = String(repeating: "y", count: length - at)
                for plain in ["é", "\u{7F}", "~", " ", "😀"] {
                    #expect(try JSONParser.parse("[\"\(before)\(plain)\(after)\"]") == .array([.string(before + plain + after)]))
                }
                #expect(try JSONParser.parse("[\"\(before)\\n\\\"\(after)\"]") == .array([.string(before + "\n\"" + after)]))
                for control in ["\u{01}", "\u{1F}", "\n"] {
                    let text = "[\"\(before)\(control)\(after)\"]"
                    #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
                    #expect(!Array(text.utf8).withUnsafeBytes { JSONParser.isValid($0) }, "\(text.debugDescription)")
                    #expect(OCPPEnvelope.parse(ByteBuffer(string: "[2,\"1\",\"A\",{\"k\":\(text)}]")).failureReason == .notJSON)
                }
                // Cut short anywhere: the string never ends.
                #expect(throws: JSONParseError.self) { try JSONParser.parse("\"\(before)\(after)") }
                #expect(OCPPEnvelope.parse(ByteBuffer(string: "[2,\"\(before)\(after)")).failureReason == .notJSON)
            }
        }
    }

    @Test("nesting beyond the limit is refused instead of exhausting the stack")
    func depth() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
    }
}

@Suite("WebSocket addresses")
struct WebSocketURLTests {
    @Test("upstream prefixes and charger paths join as documented")
    func joining() throws {
        let url = try WebSocketURL(parsing: "ws://csms:9000/steve/ws/")
        #expect(url.requestTarget(path: "/CP-1", query: nil) == "/steve/ws/CP-1")
        #expect(url.requestTarget(path: "/CP-1", query: "a=b") == "/steve/ws/CP-1?a=b")
        #expect(url.hostHeader == "csms:9000")
        let secure = try WebSocketURL(parsing: "wss://[::1]")
        #expect(secure.secure && secure.host == "::1" && secure.port == 443)
        #expect(secure.hostHeader == "[::1]")
    }

    @Test("bad addresses say what is wrong", arguments: ["http://x", "ws://:80", "ws://host:99999", "ws://host/p?q=1"])
    func invalid(text: String) {
        #expect(throws: WebSocketURL.ParseError.self) { try WebSocketURL(parsing: text) }
    }
}

extension Result where Failure == MalformedMessage {
    fileprivate var failureReason: MalformedMessage.Reason? {
        if case .failure(let malformed) = self { return malformed.reason }
        return nil
    }
}
