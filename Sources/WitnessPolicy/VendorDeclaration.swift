import Foundation
import OCPPWire
import Yams

/// A vendor's own feature matrix for a charger model (and firmware), as a buyer asks for it before a purchase
/// order, given to `report --declaration FILE` so that the report holds the claim against what the pilot shows
/// (docs/policies.md, "Vendor declaration"; JSON Schema: docs/declaration.schema.json).
public struct VendorDeclaration: Sendable, Hashable {
    public var vendor: String
    public var model: String
    /// The firmware it was made for; nil: every firmware of the model.
    public var firmware: String?
    /// The OCPP version whose feature names it uses; nil: names are looked up in the version the charger spoke.
    public var ocppVersion: OCPPVersion?
    public var features: [String: Support]
    /// Where it was read from, for evidence: `file:line` of the model's entry.
    public var source: String

    /// What the vendor says of one feature.
    public enum Support: String, Sendable, Hashable, CaseIterable {
        /// Implemented and enabled as delivered.
        case supported
        /// Implemented; may need enabling in the configuration.
        case implemented
        /// An option (hardware or licence) the unit tested may lack.
        case optional
        /// Not implemented.
        case unsupported
    }

    /// Whether it speaks for this charger: vendor and model alike (case does not matter), firmware equal if it names one.
    public func applies(vendor: String, model: String, firmware: String) -> Bool {
        self.vendor.lowercased() == vendor.lowercased() && self.model.lowercased() == model.lowercased()
            && (self.firmware.map { $0 == firmware } ?? true)
    }
}

/// Reads vendor declaration files, reporting every problem with its line.
public enum DeclarationLoader {
    public static func load(path: String) throws -> [VendorDeclaration] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PolicyErrors(errors: [PolicyError(file: path, message: "cannot read the declaration file")])
        }
        return try self.parse(String(decoding: data, as: UTF8.self), file: path)
    }

    public static func parse(_ yaml: String, file: String = "declaration") throws -> [VendorDeclaration] {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw PolicyErrors(errors: [PolicyLoader.yamlError(error, file: file)])
        } catch {
            throw PolicyErrors(errors: [PolicyError(file: file, message: "not YAML: \(error)")])
        }
        var reader = PolicyLoader.Reader(file: file)
        var declarations: [VendorDeclaration] = []
        guard let top = reader.mapping(root), let list = top.first(where: { $0.0 == "declarations" })?.1, case .sequence(let entries) = list else {
            reader.fail(root, "a declaration file is a mapping with 'declarations', a list of charger models")
            throw PolicyErrors(errors: reader.errors)
        }
        reader.checkKeys(top, allowed: ["declarations", "description"], in: "the declaration file", node: root)
        for entry in entries {
            guard let pairs = reader.mapping(entry) else {
                reader.fail(entry, "each declaration is a mapping with vendor, model and features")
                continue
            }
            reader.checkKeys(pairs, allowed: ["vendor", "model", "firmware", "ocppVersion", "features"], in: "a declaration", node: entry)
            let fields = Dictionary(pairs, uniquingKeysWith: { first, _ in first })
            func text(_ key: String, required: Bool) -> String? {
                guard let node = fields[key] else {
                    if required { reader.fail(entry, "a declaration needs '\(key)'") }
                    return nil
                }
                guard let value = node.string, !value.isEmpty else {
                    reader.fail(node, "'\(key)' must be a non-empty text")
                    return nil
                }
                return value
            }
            let vendor = text("vendor", required: true)
            let model = text("model", required: true)
            let firmware = text("firmware", required: false)
            var version: OCPPVersion?
            if let node = fields["ocppVersion"] {
                version = node.string.flatMap(OCPPVersion.init(rawValue:))
                if version == nil { reader.fail(node, "ocppVersion must be one of: \(OCPPVersion.allCases.map(\.rawValue).joined(separator: ", "))") }
            }
            var features: [String: VendorDeclaration.Support] = [:]
            if let node = fields["features"], let items = reader.mapping(node) {
                let known = version.map { Set(FeatureCatalog.features($0).map(\.name)) } ?? FeatureCatalog.allNames
                for (name, value) in items {
                    guard let canonical = known.first(where: { $0.lowercased() == name.lowercased() }) else {
                        reader.fail(value, "unknown feature '\(name)'" + (version.map { " for OCPP \($0.rawValue)" } ?? "") + "; expected one of: \(known.sorted().joined(separator: ", "))")
                        continue
                    }
                    guard let support = value.string.flatMap(VendorDeclaration.Support.init(rawValue:)) else {
                        reader.fail(value, "feature '\(name)' must be one of: \(VendorDeclaration.Support.allCases.map(\.rawValue).joined(separator: ", "))")
                        continue
                    }
                    features[canonical] = support
                }
            } else {
                reader.fail(fields["features"] ?? entry, "a declaration needs 'features', a mapping of feature name to supported, implemented, optional or unsupported")
            }
            if let vendor, let model {
                let line = entry.mark.map { ":\($0.line)" } ?? ""
                declarations.append(
                    VendorDeclaration(vendor: vendor, model: model, firmware: firmware, ocppVersion: version, features: features, source: file + line)
                )
            }
        }
        guard reader.errors.isEmpty else { throw PolicyErrors(errors: reader.errors) }
        return declarations
    }
}
