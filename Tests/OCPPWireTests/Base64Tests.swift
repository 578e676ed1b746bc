import Testing

@testable import OCPPWire

@Suite("Base64")
struct Base64Tests {
    @Test("RFC 4648 test vectors encode and decode")
    func vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
    }

    @Test("URL-safe, unpadded and line-broken input decode; other characters and impossible lengths are refused")
    func lenientAndStrict() {
        #expect(Base64.decode("-_8") == [0xFB, 0xFF])
        #expect(Base64.decode("+/8=") == [0xFB, 0xFF])
        #expect(Base64.decode("Zm9v\r\nYmFy") == Array("foobar".utf8))
        #expect(Base64.decode("Zm9vYg") == Array("foob".utf8))
        #expect(Base64.decode("Zm9v!") == nil)
        #expect(Base64.decode("Zm9vY") == nil)
        #expect(Base64.decode(Base64.encode([0x00, 0xFF, 0x10, 0x80])) == [0x00, 0xFF, 0x10, 0x80])
    }
}
