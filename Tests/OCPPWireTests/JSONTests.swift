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
