import Foundation
import OCPPSchema
import OCPPWire
import Testing

/// The real OCA schemas that `make setup` installs.
enum InstalledSchemas {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("schemas").path
    static let registry: Result<SchemaRegistry, any Error> = Result { try SchemaRegistry(root: root) }
}

/// One payload, where its first violation must be, and under which keyword.
struct KeywordCase: Sendable, CustomStringConvertible {
    var version: OCPPVersion
    var action: String
    var response = false
    var valid: String
    var invalid: String
    var keyword: String
    var pointer: String

    var description: String { "\(self.version.rawValue) \(self.action) \(self.keyword) \(self.pointer)" }
}

@Suite("OCA schema validation")
struct SchemaTests {
    let registry: SchemaRegistry

    init() throws {
        self.registry = try InstalledSchemas.registry.get()
    }

    @Test("every request and response schema of 1.6, 2.0.1 and 2.1 compiles")
    func allCompile() throws {
        let files: [OCPPVersion: Int] = [.v16: 78, .v201: 128, .v21: 181]
        for (version, count) in files {
            #expect(self.registry.schemaCount(version) == count, "\(version)")
        }
        #expect(self.registry.actions(.v16).contains("BootNotification"))
        #expect(self.registry.request(.v16, "StartTransaction") != nil)
        #expect(self.registry.response(.v201, "TransactionEvent") != nil)
        #expect(self.registry.actions(.v21).contains("NotifyPeriodicEventStream"))
        #expect(!self.registry.actions(.v201).contains("StartTransaction"))
    }

    static let cases: [KeywordCase] = [
        // OCPP 1.6
        KeywordCase(version: .v16, action: "BootNotification", valid: #"{"chargePointVendor":"V","chargePointModel":"M"}"#,
                    invalid: #"{"chargePointVendor":5,"chargePointModel":"M"}"#, keyword: "type", pointer: "/chargePointVendor"),
        KeywordCase(version: .v16, action: "BootNotification", valid: #"{"chargePointVendor":"V","chargePointModel":"M"}"#,
                    invalid: #"{"chargePointVendor":"V"}"#, keyword: "required", pointer: "/chargePointModel"),
        KeywordCase(version: .v16, action: "BootNotification", valid: #"{"chargePointVendor":"V","chargePointModel":"M"}"#,
                    invalid: #"{"chargePointVendor":"V","chargePointModel":"M","colour":"red"}"#, keyword: "additionalProperties", pointer: "/colour"),
        KeywordCase(version: .v16, action: "BootNotification", valid: #"{"chargePointVendor":"12345678901234567890","chargePointModel":"M"}"#,
                    invalid: #"{"chargePointVendor":"123456789012345678901","chargePointModel":"M"}"#, keyword: "maxLength", pointer: "/chargePointVendor"),
        KeywordCase(version: .v16, action: "StatusNotification", valid: #"{"connectorId":1,"errorCode":"NoError","status":"Available"}"#,
                    invalid: #"{"connectorId":1,"errorCode":"NoError","status":"Plugged"}"#, keyword: "enum", pointer: "/status"),
        KeywordCase(version: .v16, action: "StatusNotification", valid: #"{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"2026-11-24T10:00:00Z"}"#,
                    invalid: #"{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"24/11/2026"}"#, keyword: "format", pointer: "/timestamp"),
        KeywordCase(version: .v16, action: "UpdateFirmware", valid: #"{"location":"ftp://fw.example/f.bin","retrieveDate":"2026-11-24T10:00:00Z"}"#,
                    invalid: #"{"location":"not a uri","retrieveDate":"2026-11-24T10:00:00Z"}"#, keyword: "format", pointer: "/location"),
        KeywordCase(version: .v16, action: "MeterValues", valid: #"{"connectorId":1,"meterValue":[{"timestamp":"2026-11-24T10:00:00Z","sampledValue":[{"value":"10"}]}]}"#,
                    invalid: #"{"connectorId":1,"meterValue":[]}"#, keyword: "minItems", pointer: "/meterValue"),
        KeywordCase(version: .v16, action: "MeterValues", valid: #"{"connectorId":1,"meterValue":[{"timestamp":"2026-11-24T10:00:00Z","sampledValue":[{"value":"10"}]}]}"#,
                    invalid: #"{"connectorId":1,"meterValue":[{"timestamp":"2026-11-24T10:00:00Z","sampledValue":[{"value":10}]}]}"#, keyword: "type", pointer: "/meterValue/0/sampledValue/0/value"),
        KeywordCase(version: .v16, action: "SetChargingProfile",
                    valid: #"{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,"limit":16.3}]}}}"#,
                    invalid: #"{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,"limit":16.35}]}}}"#,
                    keyword: "multipleOf", pointer: "/csChargingProfiles/chargingSchedule/chargingSchedulePeriod/0/limit"),
        KeywordCase(version: .v16, action: "BootNotification", response: true, valid: #"{"status":"Accepted","currentTime":"2026-11-24T10:00:00Z","interval":300}"#,
                    invalid: #"{"status":"Accepted","currentTime":"2026-11-24T10:00:00Z","interval":"300"}"#, keyword: "type", pointer: "/interval"),
        // OCPP 2.0.1
        KeywordCase(version: .v201, action: "BootNotification", valid: #"{"reason":"PowerUp","chargingStation":{"model":"M","vendorName":"V"}}"#,
                    invalid: #"{"reason":"PowerUp"}"#, keyword: "required", pointer: "/chargingStation"),
        KeywordCase(version: .v201, action: "BootNotification", valid: #"{"reason":"PowerUp","chargingStation":{"model":"M","vendorName":"V"}}"#,
                    invalid: #"{"reason":"PowerUp","chargingStation":{"model":"M","vendorName":"V","colour":"red"}}"#, keyword: "additionalProperties", pointer: "/chargingStation/colour"),
        KeywordCase(version: .v201, action: "BootNotification", valid: #"{"reason":"PowerUp","chargingStation":{"model":"12345678901234567890","vendorName":"V"}}"#,
                    invalid: #"{"reason":"PowerUp","chargingStation":{"model":"123456789012345678901","vendorName":"V"}}"#, keyword: "maxLength", pointer: "/chargingStation/model"),
        KeywordCase(version: .v201, action: "BootNotification", valid: #"{"reason":"PowerUp","chargingStation":{"model":"M","vendorName":"V"}}"#,
                    invalid: #"{"reason":"Reboot","chargingStation":{"model":"M","vendorName":"V"}}"#, keyword: "enum", pointer: "/reason"),
        KeywordCase(version: .v201, action: "StatusNotification", valid: #"{"timestamp":"2026-11-24T10:00:00.5+01:00","connectorStatus":"Available","evseId":1,"connectorId":1}"#,
                    invalid: #"{"timestamp":"2026-11-24T10:00:00.5+01:00","connectorStatus":"Available","evseId":"1","connectorId":1}"#, keyword: "type", pointer: "/evseId"),
        KeywordCase(version: .v201, action: "StatusNotification", valid: #"{"timestamp":"2026-11-24T10:00:00Z","connectorStatus":"Available","evseId":1,"connectorId":1}"#,
                    invalid: #"{"timestamp":"2026-11-31T10:00:00Z","connectorStatus":"Available","evseId":1,"connectorId":1}"#, keyword: "format", pointer: "/timestamp"),
        KeywordCase(version: .v201, action: "Authorize", valid: #"{"idToken":{"idToken":"A","type":"ISO14443"}}"#,
                    invalid: #"{"idToken":{"idToken":"A","type":"ISO14443"},"iso15118CertificateHashData":[]}"#, keyword: "minItems", pointer: "/iso15118CertificateHashData"),
        KeywordCase(version: .v201, action: "Authorize",
                    valid: #"{"idToken":{"idToken":"A","type":"ISO14443"},"iso15118CertificateHashData":[{"hashAlgorithm":"SHA256","issuerNameHash":"a","issuerKeyHash":"b","serialNumber":"c","responderURL":"http://r"}]}"#,
                    invalid: #"{"idToken":{"idToken":"A","type":"ISO14443"},"iso15118CertificateHashData":[{"hashAlgorithm":"SHA256","issuerNameHash":"a","issuerKeyHash":"b","serialNumber":"c","responderURL":"http://r"},{"hashAlgorithm":"SHA256","issuerNameHash":"a","issuerKeyHash":"b","serialNumber":"c","responderURL":"http://r"},{"hashAlgorithm":"SHA256","issuerNameHash":"a","issuerKeyHash":"b","serialNumber":"c","responderURL":"http://r"},{"hashAlgorithm":"SHA256","issuerNameHash":"a","issuerKeyHash":"b","serialNumber":"c","responderURL":"http://r"},{"hashAlgorithm":"SHA256","issuerNameHash":"a","issuerKeyHash":"b","serialNumber":"c","responderURL":"http://r"}]}"#,
                    keyword: "maxItems", pointer: "/iso15118CertificateHashData"),
        KeywordCase(version: .v201, action: "NotifyEVChargingNeeds",
                    valid: #"{"evseId":1,"chargingNeeds":{"requestedEnergyTransfer":"DC","dcChargingParameters":{"evMaxCurrent":100,"evMaxVoltage":400,"stateOfCharge":100}}}"#,
                    invalid: #"{"evseId":1,"chargingNeeds":{"requestedEnergyTransfer":"DC","dcChargingParameters":{"evMaxCurrent":100,"evMaxVoltage":400,"stateOfCharge":101}}}"#,
                    keyword: "maximum", pointer: "/chargingNeeds/dcChargingParameters/stateOfCharge"),
        KeywordCase(version: .v201, action: "NotifyEVChargingNeeds",
                    valid: #"{"evseId":1,"chargingNeeds":{"requestedEnergyTransfer":"DC","dcChargingParameters":{"evMaxCurrent":100,"evMaxVoltage":400,"stateOfCharge":0}}}"#,
                    invalid: #"{"evseId":1,"chargingNeeds":{"requestedEnergyTransfer":"DC","dcChargingParameters":{"evMaxCurrent":100,"evMaxVoltage":400,"stateOfCharge":-1}}}"#,
                    keyword: "minimum", pointer: "/chargingNeeds/dcChargingParameters/stateOfCharge"),
        KeywordCase(version: .v201, action: "BootNotification", response: true, valid: #"{"currentTime":"2026-11-24T10:00:00Z","interval":300,"status":"Accepted"}"#,
                    invalid: #"{"currentTime":"2026-11-24T10:00:00Z","interval":300,"status":"OK"}"#, keyword: "enum", pointer: "/status"),
    ]

    @Test("each keyword: the valid example passes, the invalid one fails at the exact pointer", arguments: cases)
    func keyword(_ example: KeywordCase) throws {
        let schema = try #require(
            example.response
                ? self.registry.response(example.version, example.action) : self.registry.request(example.version, example.action)
        )
        let validator = SchemaValidator(profile: .strict)
        #expect(validator.validate(try JSONParser.parse(example.valid), against: schema) == [])
        let violations = validator.validate(try JSONParser.parse(example.invalid), against: schema)
        #expect(violations.count == 1, "\(violations)")
        #expect(violations.first?.keyword == example.keyword)
        #expect(violations.first?.pointer == example.pointer)
        #expect(violations.first?.severity == .error)
    }

    @Test("members are found by name whatever their order; an unknown member names the declared ones")
    func memberOrder() throws {
        let schema = try #require(self.registry.request(.v16, "StatusNotification"))
        let validator = SchemaValidator(profile: .strict)
        let orders = [
            #"{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"2026-11-24T10:00:00Z","info":"i"}"#,
            #"{"info":"i","timestamp":"2026-11-24T10:00:00Z","status":"Available","errorCode":"NoError","connectorId":1}"#,
            #"{"status":"Available","connectorId":1,"info":"i","errorCode":"NoError","timestamp":"2026-11-24T10:00:00Z"}"#,
        ]
        for text in orders {
            #expect(validator.validate(try JSONParser.parse(text), against: schema) == [], "\(text)")
        }
        // The same wrong value is found wherever its member stands.
        for text in [#"{"status":"Plugged","connectorId":1,"errorCode":"NoError"}"#, #"{"connectorId":1,"errorCode":"NoError","status":"Plugged"}"#] {
            #expect(validator.validate(try JSONParser.parse(text), against: schema).map(\.pointer) == ["/status"])
        }
        let extra = validator.validate(try JSONParser.parse(#"{"colour":"red","connectorId":1,"errorCode":"NoError","status":"Available"}"#), against: schema)
        #expect(extra.map(\.pointer) == ["/colour"])
        #expect(extra.first?.expected == "only connectorId, errorCode, info, status, timestamp, vendorId, vendorErrorCode")
        #expect(schema.declaredProperties == ["connectorId", "errorCode", "info", "status", "timestamp", "vendorId", "vendorErrorCode"])
    }

    @Test("an enum accepts exactly its values: same length, empty, longer and non-ASCII strings are told apart")
    func enumValues() throws {
        let schema = try #require(self.registry.request(.v16, "StatusNotification"))
        let validator = SchemaValidator(profile: .strict)
        func keywords(_ status: String) throws -> [String] {
            let payload: JSONValue = ["connectorId": 1, "errorCode": "NoError", "status": .string(status)]
            return validator.validate(payload, against: schema).map { "\($0.keyword) \($0.pointer)" }
        }
        for valid in ["Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved", "Unavailable", "Faulted"] {
            #expect(try keywords(valid) == [], "\(valid)")
        }
        // "Plugged" has the length of "Faulted"; "Availabl" and "Available " are one byte short and long.
        for invalid in ["Plugged", "", "Availabl", "Available ", "Availablé", "Charging\u{0}"] {
            #expect(try keywords(invalid) == ["enum /status"], "\(invalid)")
        }
    }

    @Test("a recursive schema validates at every depth, and pointers name the members on the way down")
    func recursiveSchema() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("witness-schemas-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let tree = ##"{"$schema":"http://json-schema.org/draft-06/schema#","definitions":{"node":{"type":"object","properties":{"name":{"type":"string","maxLength":5},"children":{"type":"array","items":{"$ref":"#/definitions/node"}}},"additionalProperties":false}},"$ref":"#/definitions/node"}"##
        for folder in ["v16", "v201", "v21"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
            try Data((folder == "v16" ? tree : #"{"type":"object"}"#).utf8).write(to: URL(fileURLWithPath: root + "/" + folder + "/Tree.json"))
        }
        let schema = try #require(try SchemaRegistry(root: root).request(.v16, "Tree"))
        let validator = SchemaValidator(profile: .strict)
        func pointers(_ text: String) throws -> [String] {
            try validator.validate(JSONParser.parse(text), against: schema).map { "\($0.keyword) \($0.pointer)" }
        }
        #expect(try pointers(#"{"name":"a","children":[{"name":"b","children":[{"name":"c"}]}]}"#) == [])
        #expect(try pointers(#"{"name":"a","children":[{"name":"b"},{"children":[{"name":"toolong"}]}]}"#) == ["maxLength /children/1/children/0/name"])
        #expect(try pointers(#"{"children":[{"x/y":1,"name":"b"}],"name":7}"#) == ["additionalProperties /children/0/x~1y", "type /name"])
    }

    @Test("multipleOf works on the exact decimal text, so 0.3 is a multiple of 0.1")
    func exactMultipleOf() throws {
        let schema = try #require(self.registry.request(.v16, "SetChargingProfile"))
        let payload = #"{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"W","minChargingRate":0.3,"chargingSchedulePeriod":[{"startPeriod":0,"limit":7.7}]}}}"#
        #expect(SchemaValidator().validate(try JSONParser.parse(payload), against: schema) == [])
    }

    @Test("the lenient profile reports well-known quirks as warnings; strict as errors")
    func lenientQuirks() throws {
        let schema = try #require(self.registry.request(.v16, "StatusNotification"))
        let payload = try JSONParser.parse(
            #"{"connectorId":1,"errorCode":"NoError","status":"available","timestamp":"2026-11-24T10:00:00","info":"\#(String(repeating: "x", count: 60))"}"#
        )
        let lenient = SchemaValidator(profile: .lenient).validate(payload, against: schema)
        #expect(lenient.map(\.keyword).sorted() == ["enum", "format", "maxLength"])
        #expect(lenient.allSatisfy { $0.severity == .warning })
        #expect(lenient.first { $0.keyword == "enum" }?.found.contains("differs only in case") == true)
        let strict = SchemaValidator(profile: .strict).validate(payload, against: schema)
        #expect(strict.count == 3)
        #expect(strict.allSatisfy { $0.severity == .error })
    }

    @Test("a missing schema folder is a clear start-up error naming it")
    func missingFolder() {
        #expect {
            _ = try SchemaRegistry(root: "/nonexistent/schemas")
        } throws: { error in
            "\(error)".contains("/nonexistent/schemas/v16") && "\(error)".contains("make setup")
        }
    }
}
