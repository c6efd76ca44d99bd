// App settings of the function app. Deployed after roleassignments.bicep (see main.bicep) so the identity-based host
// storage connection and the Key Vault reference can resolve when the app starts.
//
// This resource replaces the whole app-settings collection on every deployment: settings added by hand in the portal
// are removed by the next deployment, so add them here instead.
//
// Not set on purpose:
//   - FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENT*, linuxFxVersion:
//     deprecated / rejected on Flex Consumption (the runtime lives in functionAppConfig.runtime).
//   - SCIM_STORAGE_CONNECTION_STRING: the app then uses DefaultAzureCredential (the managed identity) against
//     SCIM_STORAGE_TABLE_URI. Shared keys are disabled on the account anyway.
//   - AzureWebJobsStorage__credential / __clientId: with a system-assigned identity the host uses it by default.

param functionAppName string
param storageAccountName string
param tableEndpoint string
param appInsightsName string
param keyVaultName string
param scimTokenSecretName string
param tokenSigningKeySecretName string
param accessTokenMinutes int
param scimTablePrefix string
param scimEntraTenantIds string
param queueEndpoint string
param scimChangeFeed bool
param changeFeedQueueName string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // Functions host storage through the managed identity (no keys).
    AzureWebJobsStorage__accountName: storageAccountName
    // Telemetry; the connection string is not a credential once local auth is disabled on the component.
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
    // Read by the SCIM app.
    SCIM_STORAGE_TABLE_URI: tableEndpoint
    SCIM_BEARER_TOKENS: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${scimTokenSecretName})'
    SCIM_TABLE_PREFIX: scimTablePrefix
    SCIM_ENTRA_TENANT_IDS: scimEntraTenantIds
    // The token endpoint (/oauth2/token): its signing key(s) from Key Vault, and the access-token lifetime.
    SCIM_TOKEN_SIGNING_KEYS: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${tokenSigningKeySecretName})'
    SCIM_ACCESS_TOKEN_MINUTES: string(accessTokenMinutes)
    // The change feed (README "Change feed"): its events go to this account's queue, sent with the managed identity.
    SCIM_CHANGE_FEED: scimChangeFeed ? 'on' : 'off'
    SCIM_CHANGE_FEED_QUEUE: changeFeedQueueName
    SCIM_STORAGE_QUEUE_URI: queueEndpoint
    // The change feed's timer (function_app.py) fires every minute; with the feed off it would only wake the app.
    'AzureWebJobs.change_feed_sweep.Disabled': scimChangeFeed ? 'false' : 'true'
  }
}
