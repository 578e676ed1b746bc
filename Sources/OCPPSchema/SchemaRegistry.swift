import Foundation
import OCPPWire

/// The request and response schema of every action of every OCPP version, compiled once at start-up.
public final class SchemaRegistry: Sendable {
    public struct ActionSchemas: Sendable {
        public var request: Schema?
        public var response: Schema?
    }

    /// A schema folder or file that is missing or unreadable: a start-up error naming it.
    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    private let schemas: [OCPPVersion: [String: ActionSchemas]]
    /// `schemas` in `OCPPVersion.allCases` order: the analyzer looks up a schema for every message.
    private let byVersion: [[String: ActionSchemas]]

    /// Folder of each version below the schema root, as `make setup` lays it out.
    public static func folder(for version: OCPPVersion) -> String {
        switch version {
        case .v16: return "v16"
        case .v201: return "v201"
        case .v21: return "v21"
        }
    }

    /// Loads `root/v16`, `root/v201` and `root/v21`.
    public init(root: String) throws {
        var all: [OCPPVersion: [String: ActionSchemas]] = [:]
        for version in OCPPVersion.allCases {
            let folder = root + "/" + Self.folder(for: version)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw LoadError(description: "OCA schemas for OCPP \(version.rawValue) not found at \(folder); run `make setup` or pass --schemas")
            }
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") }.sorted()
            } catch {
                throw LoadError(description: "cannot list \(folder): \(error)")
            }
            guard !names.isEmpty else { throw LoadError(description: "no schema files in \(folder); run `make setup`") }
            var actions: [String: ActionSchemas] = [:]
            for name in names {
                let path = folder + "/" + name
                let schema = try Self.compileFile(path)
                let base = String(name.dropLast(5))
                if base.hasSuffix("Response") {
                    actions[String(base.dropLast(8)), default: ActionSchemas()].response = schema
                } else if version != .v16 && base.hasSuffix("Request") {
                    actions[String(base.dropLast(7)), default: ActionSchemas()].request = schema
                } else {
                    actions[base, default: ActionSchemas()].request = schema
                }
            }
            all[version] = actions
        }
        self.schemas = all
        self.byVersion = OCPPVersion.allCases.map { all[$0] ?? [:] }
    }

    static func compileFile(_ path: String) throws -> Schema {
        guard var data = FileManager.default.contents(atPath: path) else {
            throw LoadError(description: "cannot read schema file \(path)")
        }
        if data.starts(with: [0xEF, 0xBB, 0xBF]) { data.removeFirst(3) }
        let document: JSONValue
        do {
            document = try JSONParser.parse(data)
        } catch {
            throw LoadError(description: "schema file \(path) is not valid JSON: \(error)")
        }
        var compiler = SchemaCompiler(file: path, document: document)
        do {
            return try compiler.compile()
        } catch {
            throw LoadError(description: "cannot compile schema \(error)")
        }
    }

    public func request(_ version: OCPPVersion, _ action: String) -> Schema? { self.actions(of: version)[action]?.request }
    public func response(_ version: OCPPVersion, _ action: String) -> Schema? { self.actions(of: version)[action]?.response }

    @inline(__always)
    private func actions(of version: OCPPVersion) -> [String: ActionSchemas] {
        switch version {
        case .v16: return self.byVersion[0]
        case .v201: return self.byVersion[1]
        case .v21: return self.byVersion[2]
        }
    }

    /// Every action the version defines.
    public func actions(_ version: OCPPVersion) -> Set<String> { Set(self.schemas[version]?.keys ?? [:].keys) }

    /// Number of compiled schema files per version.
    public func schemaCount(_ version: OCPPVersion) -> Int {
        self.schemas[version]?.values.reduce(0) { $0 + ($1.request == nil ? 0 : 1) + ($1.response == nil ? 0 : 1) } ?? 0
    }
}
